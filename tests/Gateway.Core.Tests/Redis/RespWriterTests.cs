using System.Buffers;
using System.Text;
using Gateway.Core.Redis;

namespace Gateway.Core.Tests.Redis;

public sealed class RespWriterTests
{
    [Fact]
    public void Writes_a_command_as_an_array_of_bulk_strings()
    {
        var output = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(output, "SET", ["k\u00e9y"], [(RedisArg)(-42L), (RedisArg)new byte[] { 0, 13, 10 }], ["PX", 1500]);

        Assert.Equal(
            "*6\r\n$3\r\nSET\r\n$4\r\nk\u00e9y\r\n$3\r\n-42\r\n$3\r\n\0\r\n\r\n$2\r\nPX\r\n$4\r\n1500\r\n",
            Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void Writes_empty_arguments_and_a_command_without_arguments()
    {
        var output = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(output, "PING", [], null, null);
        RespWriter.WriteCommand(output, "ECHO", [""], null, null);

        Assert.Equal("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void Writes_a_written_command_that_parses_back_to_its_arguments()
    {
        var big = new string('x', 100_000);
        var output = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(output, "RPUSH", ["list", big], null, null);

        // A command is itself a RESP array of bulk strings, so the parser reads it back.
        var buffer = new ReadOnlySequence<byte>(output.WrittenMemory);
        Assert.True(RespParser.TryParse(ref buffer, out var parsed));
        Assert.Equal(["RPUSH", "list", big], parsed.Items.Select(i => i.AsString()));
    }
}
