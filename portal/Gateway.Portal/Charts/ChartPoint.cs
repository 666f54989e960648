namespace Gateway.Portal.Charts;

/// <summary>One bar: its label (axis or row), its value, and the value as the reader should see it ("$1.23").</summary>
public readonly record struct ChartPoint(string Label, double Value, string ValueText);
