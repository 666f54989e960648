// Runs processes as another user, sets Unix file modes and reads /proc: Linux only, like the pods it emulates.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
