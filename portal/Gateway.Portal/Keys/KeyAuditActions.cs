using Gateway.Core.Storage;

namespace Gateway.Portal.Keys;

/// <summary>Audit actions for key requests (the user's activity log shows them).</summary>
public static class KeyAuditActions
{
    public const string Create = "key.create";
    public const string Rotate = "key.rotate";
    public const string Disable = "key.disable";
    public const string Enable = "key.enable";
    public const string Delete = "key.delete";

    public static string For(string kind) => kind switch
    {
        KeyRequestKinds.Create => Create,
        KeyRequestKinds.Rotate => Rotate,
        KeyRequestKinds.Disable => Disable,
        KeyRequestKinds.Enable => Enable,
        KeyRequestKinds.Delete => Delete,
        _ => "key." + kind,
    };
}
