using Gateway.Operator.Crds;

namespace Gateway.Operator.Accounts;

/// <summary>
/// <c>Gateway.Operator import-accounts &lt;dir|file&gt;… [options]</c>: turns CLIProxyAPI / Codex auth JSON files into
/// Secret + UpstreamAccount manifests, on stdout or one file per account under --out. Exit codes: 0 done,
/// 1 unusable input (nothing written), 2 usage error or refusal to print tokens to a terminal.
/// </summary>
public static class ImportAccountsCommand
{
    public const string Name = "import-accounts";

    public const string Help = """
        Usage: Gateway.Operator import-accounts <dir|file>... [options]

        Turns CLIProxyAPI / Codex CLI auth JSON files into a Secret (the auth JSON) and an UpstreamAccount
        (credentials.oauth) per account, for kubectl apply, a GitOps repository or the file source.
        A directory contributes its *.json files (not its subdirectories). Both formats are read: CLIProxyAPI
        (flat: type, email, account_id, access_token, refresh_token, id_token, expired, last_refresh) and
        ~/.codex/auth.json (tokens: {...}, last_refresh). Files of the same account (same type and the same
        account_id or e-mail) are merged: the newest (expired, then last_refresh) is kept; merges are
        reported on stderr.

        Output: multi-document YAML on stdout, or --out DIR (one <name>.yaml per account, mode 0600).
        Tokens are never printed to a terminal: with stdout on a terminal and no --out, the command refuses
        unless --show-tokens is given. Pipe it (| kubectl apply -f -) or use --out.

        Options:
          -o, --out DIR          write one file per account into DIR (created if missing)
          -n, --namespace NS     namespace of the objects (default: default)
              --show-tokens      allow writing the manifests (which hold tokens) to a terminal
              --skip-invalid     import the usable files even when others are unusable (exit 0)
              --type TYPE        type for files that do not name one (codex, claude)
              --provider P       UpstreamAccount provider (openai, anthropic, azure-openai, openai-compatible, gemini-openai)
              --base-url URL     provider base URL
              --token-url URL    OAuth token endpoint used to refresh
              --client-id ID     OAuth client id used to refresh
              --models A,B       models the accounts serve
              --priority N       priority tier (default 0)
              --weight N         weight in the tier (default 1)
              --label K=V        label on every UpstreamAccount (repeatable), e.g. pool=shared
          -h, --help             this text

        Defaults by type (each overridable above; overrides apply to every account of the run):
          codex   provider openai, https://chatgpt.com/backend-api/codex, token https://auth.openai.com/oauth/token,
                  client app_EMoamEEZ73f0CkXaXp7hrann, models gpt-5, gpt-5-codex
          claude  provider anthropic, https://api.anthropic.com/v1, token https://console.anthropic.com/v1/oauth/token,
                  client 9d1c250a-e61b-44d9-88ed-5944d1962f5e, models claude-sonnet-4-5, claude-opus-4-1, claude-haiku-4-5
        Names: <type>-<e-mail or account id>, made DNS-1123 safe; the Secret is <name>-auth.
        Exit codes: 0 done; 1 an unusable file (nothing written) or no account found; 2 usage error or refusal.
        """;

    /// <summary>Entry from Program: the real console, relative paths taken from the invoking shell.</summary>
    public static int Run(string[] args) =>
        Run(args, Console.Out, Console.Error, stdoutIsTerminal: !Console.IsOutputRedirected, CrdCommand.ResolveFromInvokingShell);

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, bool stdoutIsTerminal, Func<string, string>? resolvePath = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var (options, usageError) = ImportAccountsOptions.Parse(args.Count > 0 && args[0] == Name ? args.Skip(1).ToList() : args);
        if (usageError is not null)
        {
            stderr.WriteLine($"import-accounts: {usageError}");
            stderr.WriteLine("Run `Gateway.Operator import-accounts --help` for the options.");
            return 2;
        }
        if (options!.Help)
        {
            stdout.Write(Help);
            return 0;
        }
        if (options.OutDir is null && stdoutIsTerminal && !options.ShowTokens)
        {
            stderr.WriteLine("import-accounts: refusing to print OAuth tokens to the terminal.");
            stderr.WriteLine("  Write one file per account with --out DIR, pipe the output (e.g. | kubectl apply -f -),");
            stderr.WriteLine("  or pass --show-tokens if you really want to see them.");
            return 2;
        }

        var resolve = resolvePath ?? Path.GetFullPath;
        var (files, missing) = AccountImporter.Expand(options.Inputs, resolve);
        var result = AccountImporter.Import(files, options.Settings);
        var errors = missing.Concat(result.Errors).ToList();
        foreach (var e in errors) stderr.WriteLine($"{(options.SkipInvalid ? "skipped" : "error")}: {e}");
        foreach (var m in result.Merges) stderr.WriteLine(m.ToString());
        if (errors.Count > 0 && !options.SkipInvalid)
        {
            stderr.WriteLine($"import-accounts: {errors.Count} unusable input(s); nothing was written (fix them, or pass --skip-invalid to import the rest).");
            return 1;
        }
        if (result.Manifests.Count == 0)
        {
            stderr.WriteLine("import-accounts: no account found in the given files.");
            return 1;
        }

        if (options.OutDir is { } outDir)
        {
            var dir = resolve(outDir);
            Directory.CreateDirectory(dir);
            foreach (var m in result.Manifests)
            {
                var path = Path.Combine(dir, AccountManifestWriter.FileName(m));
                WritePrivateFile(path, AccountManifestWriter.Write(m));
                stdout.WriteLine($"wrote {Path.Join(outDir, AccountManifestWriter.FileName(m))}");
            }
        }
        else
        {
            stdout.Write(AccountManifestWriter.WriteAll(result.Manifests));
        }
        var dropped = result.Merges.Sum(m => m.Dropped.Count);
        stderr.WriteLine($"import-accounts: {result.Manifests.Count} account(s) from {files.Count - (errors.Count - missing.Count)} file(s)" +
                         (dropped > 0 ? $", {dropped} duplicate file(s) merged" : "") +
                         (errors.Count > 0 ? $", {errors.Count} skipped" : "") + ".");
        return 0;
    }

    // Owner-only from the start: the file holds tokens.
    private static void WritePrivateFile(string path, string content)
    {
        var tmp = path + ".tmp";
        if (OperatingSystem.IsWindows())
        {
            File.WriteAllText(tmp, content);
        }
        else
        {
            using var stream = new FileStream(tmp, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            using var writer = new StreamWriter(stream);
            writer.Write(content);
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite); // a leftover .tmp kept its mode
        }
        File.Move(tmp, path, overwrite: true);
    }
}
