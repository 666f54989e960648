using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// Marks a test class whose tests run against a real API server: its <see cref="KubeFactAttribute"/> tests
/// are reported as skipped, with the reason, when <c>KUBEBUILDER_ASSETS</c> does not name usable assets.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RealApiServerAttribute : Attribute;

/// <summary>
/// A fact of a Kubernetes acceptance test declared once in an abstract class and run by one subclass per
/// cluster (fake, real). Skipped in a <see cref="RealApiServerAttribute"/> class when the assets are missing.
/// </summary>
[XunitTestCaseDiscoverer("Gateway.Testing.Kubernetes.Envtest.KubeFactDiscoverer", "Gateway.Testing")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class KubeFactAttribute : FactAttribute;

/// <summary>A fact only meaningful against a real API server: skipped (with the reason) without the assets.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RealApiServerFactAttribute : FactAttribute
{
    public RealApiServerFactAttribute()
    {
        if (EnvtestAssets.Unavailable is { } why) Skip = why;
    }
}

/// <summary>Discovers <see cref="KubeFactAttribute"/> tests: a normal test case, or a skipped one.</summary>
public sealed class KubeFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        var display = discoveryOptions.MethodDisplayOrDefault();
        var displayOptions = discoveryOptions.MethodDisplayOptionsOrDefault();
        var real = testMethod.TestClass.Class.GetCustomAttributes(typeof(RealApiServerAttribute)).Any();
        if (real && EnvtestAssets.Unavailable is { } why)
        {
            return [new XunitSkippedDataRowTestCase(diagnosticMessageSink, display, displayOptions, testMethod, "Real API server: " + why)];
        }
        return [new XunitTestCase(diagnosticMessageSink, display, displayOptions, testMethod)];
    }
}

/// <summary>
/// Member data for a theory that only runs against a real API server: every row is reported as skipped,
/// with the reason, when <c>KUBEBUILDER_ASSETS</c> does not name usable assets.
/// </summary>
[DataDiscoverer("Xunit.Sdk.MemberDataDiscoverer", "xunit.core")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class RealApiServerMemberDataAttribute : MemberDataAttributeBase
{
    public RealApiServerMemberDataAttribute(string memberName, params object[] parameters) : base(memberName, parameters)
    {
        if (EnvtestAssets.Unavailable is { } why) Skip = "Real API server: " + why;
    }

    protected override object[]? ConvertDataItem(System.Reflection.MethodInfo testMethod, object item) =>
        item as object[] ?? throw new ArgumentException($"{MemberName} must yield object[] rows.", nameof(item));
}
