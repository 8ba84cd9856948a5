// The .NET sample client of the transcription gateway, on the Transcribe.Client library: streams
// an audio file, stdin (--file -) or an HTTP audio stream and prints the transcripts.
//
//     dotnet run -- --addr 127.0.0.1:50051 --file speech.wav
//
// The library sends the config, the audio (paced here at real time unless --fast), half-closes,
// and resumes the stream by itself when a gateway replica drains (unless --no-resume). The first
// Ctrl+C ends the audio cleanly; a second one cancels the call (exit code 130).
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Transcribe.Client;
using Transcribe.V1;
using TranscribeCli;

Options? options;
try
{
    options = Options.Parse(args);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message} (see --help)");
    return 2;
}
if (options is null)
{
    Console.WriteLine(Options.Usage);
    return 0;
}

var callCts = new CancellationTokenSource();
var audioCts = CancellationTokenSource.CreateLinkedTokenSource(callCts.Token);
var interrupts = 0;
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true; // keep running: the first Ctrl+C ends the audio, the second cancels the call
    if (Interlocked.Increment(ref interrupts) == 1)
    {
        audioCts.Cancel();
    }
    else
    {
        callCts.Cancel();
    }
};

try
{
    await Cli.RunAsync(options, audioCts.Token, callCts.Token);
    return 0;
}
catch (Exception e) when (callCts.IsCancellationRequested && (e is TranscribeException or OperationCanceledException))
{
    Console.Error.Write(Output.ErrorLine("CANCELLED", "interrupted"));
    return 130;
}
catch (OperationCanceledException) when (audioCts.IsCancellationRequested)
{
    return 0; // Ctrl+C before the audio could be opened
}
catch (TranscribeException e)
{
    Console.Error.Write(Output.ErrorLine(e.StatusName, e.Detail));
    return 1;
}
catch (InputException e)
{
    Console.Error.Write(Output.ErrorLine(e.Status, e.Message));
    return 1;
}

namespace TranscribeCli
{
    static class Cli
    {
        /// <summary>The environment variable the token is read from when --token is not given.</summary>
        public const string TokenVariable = "TRANSCRIBE_TOKEN";

        /// <summary>Streams the audio and prints the responses until the stream ends.</summary>
        public static async Task RunAsync(Options o, CancellationToken audioToken, CancellationToken callToken)
        {
            using var source = await AudioSource.OpenAsync(o, audioToken);
            TranscribeClient client;
            try
            {
                client = new TranscribeClient(o.Addr, new TranscribeClientOptions
                {
                    Token = o.Token ?? Environment.GetEnvironmentVariable(TokenVariable),
                    Tls = o.Tls,
                    CaFile = o.CaFile,
                    Resume = o.Resume ? new ResumeOptions() : ResumeOptions.Off,
                });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                throw new InputException("INVALID_ARGUMENT", $"cannot read {o.CaFile}: {e.Message}", e);
            }
            using (client)
            {
                InputException? inputFailure = null;
                var audio = Capture(Chunks(source, pace: !o.Fast, audioToken), e => inputFailure = e);
                var responses = client.TranscribeAsync(audio, NewConfig(o, source), stream => stream.Resuming += (_, e) =>
                    Console.Error.WriteLine(
                        $"resuming: {e.Error.Message} (attempt {e.Attempt}, from {e.ResumePoint.CommittedSeconds} s)"),
                    callToken);
                await foreach (var response in responses)
                {
                    if (Output.Render(response, o.Interim, o.Json) is { } line)
                    {
                        Console.WriteLine(line);
                    }
                }
                if (inputFailure is not null)
                {
                    throw inputFailure; // after the results of the audio sent before it
                }
            }
        }

        static StreamingConfig NewConfig(Options o, AudioSource source)
        {
            var config = new StreamingConfig
            {
                Model = o.Model,
                Language = o.Language,
                Encoding = source.Encoding,
                SampleRate = source.SampleRate,
            };
            if (source.Channels > 1)
            {
                config.Channels = source.Channels;
            }
            if (o.Interim)
            {
                config.InterimResults = true;
            }
            if (o.SmartFormat)
            {
                config.SmartFormat = true;
            }
            if (o.Diarize)
            {
                config.Diarize = true;
            }
            return config;
        }

        /// <summary>The audio in chunks, at real-time pace when asked and the rate is known.</summary>
        /// <remarks>Ends early, without error, when <paramref name="audioToken"/> is cancelled.</remarks>
        static async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks(
            AudioSource source, bool pace, [EnumeratorCancellation] CancellationToken audioToken)
        {
            pace = pace && source.ByteRate > 0;
            var clock = Stopwatch.StartNew();
            long sent = 0;
            while (!audioToken.IsCancellationRequested)
            {
                var buffer = new byte[source.ChunkBytes]; // the library keeps its own copy; a new one is simplest
                int read;
                try
                {
                    read = await source.ReadAsync(buffer, audioToken);
                }
                catch (OperationCanceledException) when (audioToken.IsCancellationRequested)
                {
                    yield break; // Ctrl+C: end the audio here
                }
                if (read == 0)
                {
                    yield break;
                }
                yield return buffer.AsMemory(0, read);
                sent += read;
                if (pace)
                {
                    var wait = TimeSpan.FromSeconds((double)sent / source.ByteRate) - clock.Elapsed;
                    if (wait > TimeSpan.Zero)
                    {
                        try
                        {
                            await Task.Delay(wait, audioToken);
                        }
                        catch (OperationCanceledException)
                        {
                            yield break;
                        }
                    }
                }
            }
        }

        /// <summary>Ends the audio at an input failure, which is reported after the results.</summary>
        static async IAsyncEnumerable<ReadOnlyMemory<byte>> Capture(
            IAsyncEnumerable<ReadOnlyMemory<byte>> audio, Action<InputException> failed)
        {
            await using var chunks = audio.GetAsyncEnumerator();
            while (true)
            {
                try
                {
                    if (!await chunks.MoveNextAsync())
                    {
                        yield break;
                    }
                }
                catch (InputException e)
                {
                    failed(e);
                    yield break;
                }
                yield return chunks.Current;
            }
        }
    }
}
