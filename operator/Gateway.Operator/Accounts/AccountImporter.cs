namespace Gateway.Operator.Accounts;

/// <summary>What an import produced: manifests for the usable accounts, the unusable files, and the duplicates merged.</summary>
public sealed record ImportResult(IReadOnlyList<AccountManifest> Manifests, IReadOnlyList<AuthFileError> Errors, IReadOnlyList<AccountMerge> Merges);

/// <summary>An auth file to import: where it is, and how messages name it.</summary>
public readonly record struct AuthFileInput(string Path, string DisplayName);

/// <summary>
/// The conversion shared by <c>import-accounts</c> and the file source's <c>accounts/</c> folder:
/// read and normalize every file, resolve each account's target, merge duplicates, name, build manifests.
/// </summary>
public static class AccountImporter
{
    /// <summary>
    /// Expands command-line inputs: a directory contributes its *.json files (not its subdirectories), in ordinal
    /// order; a file is taken as given. Inputs that do not exist are errors.
    /// </summary>
    public static (IReadOnlyList<AuthFileInput> Files, IReadOnlyList<AuthFileError> Errors) Expand(IEnumerable<string> inputs, Func<string, string>? resolve = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var files = new List<AuthFileInput>();
        var errors = new List<AuthFileError>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            var path = resolve?.Invoke(input) ?? Path.GetFullPath(input);
            if (Directory.Exists(path))
            {
                foreach (var f in Directory.EnumerateFiles(path, "*.json", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal))
                {
                    if (seen.Add(Path.GetFullPath(f))) files.Add(new AuthFileInput(f, Path.Join(input, Path.GetFileName(f))));
                }
            }
            else if (File.Exists(path))
            {
                if (seen.Add(Path.GetFullPath(path))) files.Add(new AuthFileInput(path, input));
            }
            else
            {
                errors.Add(new AuthFileError(input, "no such file or directory."));
            }
        }
        return (files, errors);
    }

    public static ImportResult Import(IEnumerable<AuthFileInput> files, ImportSettings settings)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(settings);
        var errors = new List<AuthFileError>();
        var accounts = new List<ImportedAccount>();
        var targets = new Dictionary<string, AccountTarget>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var (account, error) = AuthFileReader.ReadFile(file.Path, file.DisplayName, settings.DefaultType);
            if (error is not null) { errors.Add(error); continue; }
            if (!targets.ContainsKey(account!.Type))
            {
                var (target, problem) = settings.Resolve(account.Type);
                if (problem is not null) { errors.Add(new AuthFileError(file.DisplayName, problem)); continue; }
                targets[account.Type] = target!;
            }
            accounts.Add(account);
        }

        var (unique, merges) = AccountDeduplicator.Merge(accounts);

        // Names from type and identity; accounts whose readable names clash all get the hashed form.
        var named = unique.Select(a => (Account: a, Name: AccountNaming.Name(a.Type, a.Identity))).ToList();
        var clashing = named.GroupBy(n => n.Name, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        var manifests = named
            .Select(n => clashing.Contains(n.Name) ? n with { Name = AccountNaming.Distinct(n.Account.Type, n.Account.Identity) } : n)
            .OrderBy(n => n.Name, StringComparer.Ordinal)
            .Select(n => AccountManifestBuilder.Build(n.Name, n.Account, targets[n.Account.Type], settings))
            .ToList();
        return new ImportResult(manifests, errors, merges);
    }
}
