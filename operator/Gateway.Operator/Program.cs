using Gateway.Core.Hosting;
using Gateway.Operator.Accounts;
using Gateway.Operator.Crds;
using Gateway.Operator.Hosting;
using Gateway.Operator.Verify;

namespace Gateway.Operator;

/// <summary>
/// Process entry point: `crds --out DIR` generates the CRDs, `import-accounts …` converts auth files into manifests;
/// `verify` checks that money is conserved between PostgreSQL and Redis;
/// anything else runs the operator.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "crds") return CrdCommand.Run(args);
        if (args.Length > 0 && args[0] == ImportAccountsCommand.Name) return ImportAccountsCommand.Run(args);
        if (args.Length > 0 && args[0] == VerifyCommand.Name) return await VerifyCommand.RunAsync(args);

        return await ProcessHost.RunAsync("operator", () => OperatorApp.Build(args));
    }
}
