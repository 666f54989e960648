namespace Gateway.Portal.Auth;

/// <summary>Why a chosen password is refused (the page shows a localized sentence for each).</summary>
public enum PasswordProblem
{
    TooShort,
    ContainsLogin,
    ContainsEmail,
    Common,
    Mismatch,
}

/// <summary>The portal's password rules: at least 12 characters, not containing the login or e-mail, not a common password.</summary>
public static class PasswordPolicy
{
    public const int MinimumLength = 12;
    public const int MaximumLength = 256;

    /// <summary>Every rule the password breaks (empty when it is acceptable).</summary>
    public static IReadOnlyList<PasswordProblem> Check(string? password, string? confirmation, string login, string email)
    {
        ArgumentNullException.ThrowIfNull(login);
        ArgumentNullException.ThrowIfNull(email);
        var problems = new List<PasswordProblem>();
        password ??= "";
        if (password.Length < MinimumLength || password.Length > MaximumLength) problems.Add(PasswordProblem.TooShort);
        if (login.Length > 0 && password.Contains(login, StringComparison.OrdinalIgnoreCase)) problems.Add(PasswordProblem.ContainsLogin);
        var local = email.Split('@', 2)[0];
        if ((email.Length > 0 && password.Contains(email, StringComparison.OrdinalIgnoreCase))
            || (local.Length >= 3 && password.Contains(local, StringComparison.OrdinalIgnoreCase)))
        {
            problems.Add(PasswordProblem.ContainsEmail);
        }
        if (password.Length > 0 && CommonPasswords.Contains(password)) problems.Add(PasswordProblem.Common);
        if (confirmation is not null && !string.Equals(password, confirmation, StringComparison.Ordinal)) problems.Add(PasswordProblem.Mismatch);
        return problems;
    }
}
