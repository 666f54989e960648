using System.Text.Json.Nodes;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests;

/// <summary>The fake's CEL subset evaluates the rules CRDs use (checked against a real server by FakeMatchesRealApiServerTests).</summary>
public sealed class FakeCelTests
{
    [Theory]
    [InlineData("has(self.a) != has(self.b)", """{"a":1}""", true)]
    [InlineData("has(self.a) != has(self.b)", """{"a":1,"b":2}""", false)]
    [InlineData("!has(self.p) || self.p != 'azure' || self.m.all(x, has(x.u))", """{"p":"azure","m":[{"u":"d"},{"n":"x"}]}""", false)]
    [InlineData("!has(self.p) || self.p != 'azure' || self.m.all(x, has(x.u))", """{"p":"openai","m":[{"n":"x"}]}""", true)]
    [InlineData("self.all(g, self.exists_one(h, h.id == g.id))", """[{"id":"a"},{"id":"b"}]""", true)]
    [InlineData("self.all(g, self.exists_one(h, h.id == g.id))", """[{"id":"a"},{"id":"a"}]""", false)]
    [InlineData("1 + 2 * 3 == 7 && size(self) <= 3 && self.startsWith('ab')", "\"abc\"", true)]
    [InlineData("self.x > 1.5 ? self.y in ['a', 'b'] : false", """{"x":2,"y":"b"}""", true)]
    [InlineData("self.map(v, v * 2).exists(v, v == 4) && self.filter(v, v > 1).size() == 2", "[1,2,3]", true)]
    public void Evaluates_rules(string rule, string self, bool expected) =>
        Assert.Equal(expected, FakeCel.Evaluate(rule, JsonNode.Parse(self)));

    [Fact]
    public void A_rule_outside_the_subset_fails_loudly_instead_of_passing()
    {
        Assert.Throws<FormatException>(() => FakeCel.Evaluate("self.quantity(1)", JsonNode.Parse("{}")));
        Assert.Throws<FormatException>(() => FakeCel.Evaluate("self == oldSelf", JsonNode.Parse("{}")));
    }

    [Fact]
    public void A_missing_field_is_an_evaluation_error()
    {
        Assert.Throws<InvalidOperationException>(() => FakeCel.Evaluate("self.a == 1", JsonNode.Parse("{}")));
    }
}
