namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// The envtest convention: <c>KUBEBUILDER_ASSETS</c> names a folder with <c>kube-apiserver</c> (and
/// <c>etcd</c>; otherwise <c>etcd</c> from PATH, e.g. Debian's etcd-server package).
/// </summary>
public static class EnvtestAssets
{
    public const string Variable = "KUBEBUILDER_ASSETS";

    /// <summary>Null when a real API server can be started; otherwise why not (the skip reason).</summary>
    public static string? Unavailable { get; } = Check();

    public static bool Available => Unavailable is null;

    public static string Folder => Environment.GetEnvironmentVariable(Variable) ?? "";

    public static string KubeApiServer => Path.Combine(Folder, "kube-apiserver");

    public static string Etcd =>
        File.Exists(Path.Combine(Folder, "etcd")) ? Path.Combine(Folder, "etcd") : FindOnPath("etcd") ?? "etcd";

    private static string? Check()
    {
        var folder = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(folder))
        {
            return $"{Variable} is not set: point it at a folder holding kube-apiserver (e.g. $(setup-envtest use -p path 1.28.x)) to run against a real API server.";
        }
        if (!File.Exists(Path.Combine(folder, "kube-apiserver"))) return $"{Variable}={folder} holds no kube-apiserver.";
        if (!File.Exists(Path.Combine(folder, "etcd")) && FindOnPath("etcd") is null)
        {
            return $"No etcd in {Variable}={folder} nor on PATH (apt-get install etcd-server).";
        }
        return null;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);
}
