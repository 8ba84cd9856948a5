// The shared test vectors (clients/testdata, see its README.md): every client language reads them,
// so all four agree on what they send, print and resend after a failure.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Transcribe.V1;
using Xunit;

namespace Transcribe.Client.Tests;

public class TestVectors
{
    static readonly string Root = FindTestdata();

    static string FindTestdata()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "clients", "testdata");
            if (File.Exists(Path.Combine(candidate, "README.md")))
            {
                return candidate;
            }
        }
        throw new DirectoryNotFoundException("clients/testdata above " + AppContext.BaseDirectory);
    }

    static JsonNode ReadJson(string path) => JsonNode.Parse(File.ReadAllText(Path.Combine(Root, path)))!;

    static string[] Lines(string path) =>
        File.ReadAllLines(Path.Combine(Root, path)).Where(line => line.Length > 0).ToArray();

    static AudioEncoding Encoding(string name) =>
        (AudioEncoding)AudioEncoding.Descriptor.FindValueByName(name).Number;

    public static IEnumerable<object[]> Plans() =>
        ReadJson("wav/plans.json")["plans"]!.AsArray().Select(p => new object[] { p!["file"]!.GetValue<string>() });

    [Theory]
    [MemberData(nameof(Plans))]
    public void SendPlan(string file)
    {
        var vectors = ReadJson("wav/plans.json");
        var want = vectors["plans"]!.AsArray().Single(p => p!["file"]!.GetValue<string>() == file)!;
        var data = File.ReadAllBytes(Path.Combine(Root, "wav", file));
        var plan = AudioPlan.ForFile(data, AudioEncoding.Unspecified, 0, vectors["chunk_ms"]!.GetValue<int>());
        Assert.Equal(Encoding(want["encoding"]!.GetValue<string>()), plan.Encoding);
        Assert.Equal(want["sample_rate"]!.GetValue<uint>(), plan.SampleRate);
        Assert.Equal(want["channels"]!.GetValue<uint>(), plan.Channels);
        Assert.Equal(want["payload_offset"]!.GetValue<int>(), plan.PayloadOffset);
        Assert.Equal(want["payload_bytes"]!.GetValue<int>(), plan.PayloadLength);
        Assert.Equal(want["frame_bytes"]!.GetValue<int>(), plan.FrameBytes);
        Assert.Equal(want["bytes_per_second"]!.GetValue<int>(), plan.ByteRate);
        Assert.Equal(want["chunk_bytes"]!.GetValue<int>(), plan.ChunkBytes);
        var config = new StreamingConfig { Encoding = plan.Encoding, SampleRate = plan.SampleRate, Channels = plan.Channels };
        Assert.Equal(want["resumable"]!.GetValue<bool>(), Resumption.FrameBytes(config) is not null);
    }

    [Theory]
    [MemberData(nameof(Plans))]
    public void LiveReadsAreSentInWholeFrames(string file)
    {
        var want = ReadJson("wav/plans.json")["plans"]!.AsArray().Single(p => p!["file"]!.GetValue<string>() == file)!;
        var frame = want["frame_bytes"]!.GetValue<int>();
        for (var length = 0; length <= 3 * frame + 1; length++)
        {
            var whole = AudioPlan.WholeFrames(length, frame);
            Assert.Equal(0, whole % frame);
            Assert.InRange(length - whole, 0, frame - 1); // less than a frame waits for its rest
        }
    }

    static List<StreamTranscribeResponse> Recorded() =>
        Lines("responses/recorded.jsonl").Select(line => JsonParser.Default.Parse<StreamTranscribeResponse>(line)).ToList();

    [Theory]
    [InlineData(false, "expected.txt")]
    [InlineData(true, "expected-interim.txt")]
    public void RecordedStreamPrintsTheExpectedText(bool interim, string expected)
    {
        var printed = Recorded().Select(r => Output.Render(r, interim, json: false)).OfType<string>().ToArray();
        Assert.Equal(Lines($"responses/{expected}"), printed);
    }

    [Fact]
    public void RecordedStreamPrintsTheExpectedJsonLines()
    {
        var printed = Recorded().Select(r => Canonical(JsonNode.Parse(Output.Render(r, false, json: true)!))).ToArray();
        var expected = Lines("responses/expected.jsonl").Select(l => Canonical(JsonNode.Parse(l))).ToArray();
        Assert.Equal(expected, printed);
    }

    /// <summary>A JSON value with sorted keys and numbers in one notation, to compare by value.</summary>
    static string Canonical(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject o => "{" + string.Join(",", o.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => JsonSerializer.Serialize(p.Key) + ":" + Canonical(p.Value))) + "}",
        JsonArray a => "[" + string.Join(",", a.Select(Canonical)) + "]",
        JsonValue v when v.GetValueKind() == JsonValueKind.Number =>
            v.GetValue<double>().ToString("R", CultureInfo.InvariantCulture),
        _ => node.ToJsonString(),
    };

    public static IEnumerable<object[]> Errors() =>
        ReadJson("errors.json")["errors"]!.AsArray().Select((_, i) => new object[] { i });

    [Theory]
    [MemberData(nameof(Errors))]
    public void ErrorStatus(int index)
    {
        var want = ReadJson("errors.json")["errors"]!.AsArray()[index]!;
        var status = Google.Rpc.Status.Parser.ParseFrom(Convert.FromBase64String(want["status_details_bin"]!.GetValue<string>()));
        var error = TranscribeException.FromStatus(status);
        Assert.Equal(want["code"]!.GetValue<string>(), error.StatusName);
        Assert.Equal(want["code_number"]!.GetValue<int>(), (int)error.StatusCode);
        Assert.Equal(want["reason"]!.GetValue<string>(), error.Reason);
        Assert.Equal(want["domain"]!.GetValue<string>(), error.Domain);
        var point = want["resume_point"];
        Assert.Equal(point is null ? null : JsonParser.Default.Parse<ResumePoint>(point.ToJsonString()), error.ResumePoint);
        Assert.Equal(want["resumable"]!.GetValue<bool>(), Resumption.ShouldResume(error.StatusCode, error.ResumePoint));
        Assert.Equal(want["stderr"]!.GetValue<string>(), Output.ErrorLine(error.StatusName, want["message"]!.GetValue<string>()));
    }

    public static IEnumerable<object[]> ResumeCases() =>
        ReadJson("resume.json")["resume"]!.AsArray().Select(c => new object[] { c!["name"]!.GetValue<string>() });

    [Theory]
    [MemberData(nameof(ResumeCases))]
    public void Resume(string name)
    {
        var c = ReadJson("resume.json")["resume"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == name)!;
        var config = new StreamingConfig
        {
            Encoding = Encoding(c["encoding"]!.GetValue<string>()),
            SampleRate = c["sample_rate"]!.GetValue<uint>(),
            Channels = c["channels"]!.GetValue<uint>(),
        };
        var frame = Resumption.FrameBytes(config);
        var plan = Resumption.Plan(
            frame,
            c["stream_start_byte"]!.GetValue<long>(),
            c["kept_from_byte"]!.GetValue<long>(),
            c["sent_bytes"]!.GetValue<long>(),
            JsonParser.Default.Parse<ResumePoint>(c["resume_point"]!.ToJsonString()));
        var want = c["expected"]!;
        Assert.Equal(want["resumable"]!.GetValue<bool>(), plan.Resumable);
        if (plan.Resumable)
        {
            Assert.Equal(c["frame_bytes"]!.GetValue<int>(), frame);
            Assert.Equal(want["start_offset_seconds"]!.GetValue<double>(), plan.StartOffsetSeconds);
            Assert.Equal(want["resend_from_byte"]!.GetValue<long>(), plan.ResendFromByte);
            Assert.Equal(want["resend_bytes"]!.GetValue<long>(), plan.ResendBytes);
        }
    }

    public static IEnumerable<object[]> CommitCases() =>
        ReadJson("resume.json")["commit"]!.AsArray().Select(c => new object[] { c!["name"]!.GetValue<string>() });

    [Theory]
    [MemberData(nameof(CommitCases))]
    public void Commit(string name)
    {
        var c = ReadJson("resume.json")["commit"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == name)!;
        var position = Resumption.KeepFromByte(
            c["stream_start_byte"]!.GetValue<long>(),
            c["stream_start_offset_seconds"]!.GetValue<double>(),
            c["committed_seconds"]!.GetValue<double>(),
            c["sample_rate"]!.GetValue<uint>(),
            c["frame_bytes"]!.GetValue<int>());
        Assert.Equal(c["expected_keep_from_byte"]!.GetValue<long>(), position);
    }

    [Fact]
    public void KeptAudioIsBoundedAndGivesBackWhatIsNotCommitted()
    {
        var kept = new KeptAudio(6);
        var source = new byte[] { 0, 1, 2, 3 };
        kept.Append(source);
        Array.Fill(source, (byte)9); // the caller reuses its buffer: the kept copy does not change
        kept.Append(new byte[] { 4, 5, 6, 7 });
        Assert.Equal((8L, 2L, 6L), (kept.SentBytes, kept.KeptFromByte, kept.Size));
        Assert.Equal(new byte[] { 3, 4, 5, 6, 7 }, kept.From(3).SelectMany(c => c.ToArray()).ToArray());
        kept.DropBefore(5);
        Assert.Equal((5L, 3L), (kept.KeptFromByte, kept.Size));
        Assert.Throws<ArgumentOutOfRangeException>(() => kept.From(4));
    }

    [Fact]
    public void BackoffGrowsToItsCapWithJitterInItsUpperHalf()
    {
        var options = new ResumeOptions
        {
            InitialBackoff = TimeSpan.FromMilliseconds(100), MaxBackoff = TimeSpan.FromSeconds(1), BackoffMultiplier = 2,
        };
        Assert.Equal(
            new[] { 100.0, 200, 400, 800, 1000 },
            Enumerable.Range(1, 5).Select(a => Resumption.Backoff(a, options, 0.999999).TotalMilliseconds));
        Assert.Equal(50.0, Resumption.Backoff(1, options, 0).TotalMilliseconds);
        Assert.Equal(StatusCode.Unavailable, (StatusCode)14);
    }
}
