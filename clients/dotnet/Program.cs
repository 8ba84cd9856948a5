// The .NET sample client of the transcription gateway: streams an audio file (or an HTTP audio
// stream) on one TranscribeService/StreamTranscribe call and prints the transcripts.
//
//     dotnet run -- --addr 127.0.0.1:50051 --file speech.wav
//
// A reader task prints the responses while the main flow writes the config, then the audio at
// real-time pace, then half-closes with RequestStream.CompleteAsync(). The first Ctrl+C ends the
// audio the same clean way; a second one cancels the call (exit code 130).
using System.Diagnostics;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Transcribe.V1;
using TranscribeClient;

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
    await Client.RunAsync(options, audioCts.Token, callCts.Token);
    return 0;
}
catch (Exception e) when (callCts.IsCancellationRequested && (e is RpcException or OperationCanceledException))
{
    Console.Error.WriteLine("error: CANCELLED: interrupted");
    return 130;
}
catch (OperationCanceledException) when (audioCts.IsCancellationRequested)
{
    return 0; // Ctrl+C before the audio could be opened
}
catch (RpcException e)
{
    Console.Error.WriteLine($"error: {Client.StatusName(e.StatusCode)}: {e.Status.Detail}");
    return 1;
}
catch (InputException e)
{
    Console.Error.WriteLine($"error: {e.Status}: {e.Message}");
    return 1;
}

namespace TranscribeClient
{
    static class Client
    {
        const string InterimPrefix = "~ ";

        static readonly JsonSerializerOptions CompactJson = new()
        {
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };

        /// <summary>Streams the audio on one call and prints the responses until the call ends.</summary>
        public static async Task RunAsync(Options o, CancellationToken audioToken, CancellationToken callToken)
        {
            using var source = await AudioSource.OpenAsync(o, audioToken);
            using var channel = CreateChannel(o);
            var client = new TranscribeService.TranscribeServiceClient(channel);
            var headers = new Metadata();
            if (o.Token is not null)
            {
                headers.Add("authorization", $"Bearer {o.Token}");
            }
            using var call = client.StreamTranscribe(headers, cancellationToken: callToken);

            var reader = Task.Run(async () =>
            {
                await foreach (var response in call.ResponseStream.ReadAllAsync())
                {
                    if (Render(response, o.Interim, o.Json) is { } line)
                    {
                        Console.WriteLine(line);
                    }
                }
            });

            InputException? inputFailure = null;
            try
            {
                await call.RequestStream.WriteAsync(new StreamTranscribeRequest { Config = NewConfig(o, source) });
                try
                {
                    await SendAudioAsync(call.RequestStream, source, pace: !o.Fast, audioToken);
                }
                catch (InputException e)
                {
                    inputFailure = e; // reported after the results of the audio sent before it
                }
                await call.RequestStream.CompleteAsync();
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException)
            {
                // The call is over: the reader reports how it ended.
            }
            await reader;
            if (inputFailure is not null)
            {
                throw inputFailure;
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

        /// <summary>Writes the audio in chunks, at real-time pace when asked and the rate is known.</summary>
        /// <remarks>Stops early, without error, when <paramref name="audioToken"/> is cancelled.</remarks>
        static async Task SendAudioAsync(
            IClientStreamWriter<StreamTranscribeRequest> requests, AudioSource source, bool pace, CancellationToken audioToken)
        {
            pace = pace && source.ByteRate > 0;
            var buffer = new byte[source.ChunkBytes];
            var clock = Stopwatch.StartNew();
            long sent = 0;
            try
            {
                int read;
                while ((read = await source.ReadAsync(buffer, audioToken)) > 0)
                {
                    await requests.WriteAsync(new StreamTranscribeRequest { Audio = ByteString.CopyFrom(buffer, 0, read) });
                    sent += read;
                    if (pace)
                    {
                        var wait = TimeSpan.FromSeconds((double)sent / source.ByteRate) - clock.Elapsed;
                        if (wait > TimeSpan.Zero)
                        {
                            await Task.Delay(wait, audioToken);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (audioToken.IsCancellationRequested)
            {
                // Ctrl+C: end the audio here.
            }
        }

        /// <summary>The output line for one response, or null when it prints nothing.</summary>
        static string? Render(StreamTranscribeResponse response, bool interim, bool json)
        {
            if (json)
            {
                // The canonical proto3 JSON mapping, compacted to one stable line.
                return JsonNode.Parse(JsonFormatter.Default.Format(response))!.ToJsonString(CompactJson);
            }
            if (response.ResponseCase != StreamTranscribeResponse.ResponseOneofCase.Result ||
                response.Result.Alternatives.Count == 0)
            {
                return null;
            }
            var text = response.Result.Alternatives[0].Transcript.Trim();
            if (text.Length == 0)
            {
                return null;
            }
            if (response.Result.IsFinal)
            {
                return text;
            }
            return interim ? InterimPrefix + text : null;
        }

        /// <summary>Plaintext by default; TLS with --tls, trusting only --ca-file's roots if given.</summary>
        static GrpcChannel CreateChannel(Options o)
        {
            if (!o.Tls && o.CaFile is null)
            {
                return GrpcChannel.ForAddress($"http://{o.Addr}");
            }
            var channelOptions = new GrpcChannelOptions();
            if (o.CaFile is not null)
            {
                var roots = new X509Certificate2Collection();
                try
                {
                    roots.ImportFromPemFile(o.CaFile);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
                {
                    throw new InputException("INVALID_ARGUMENT", $"cannot read {o.CaFile}: {e.Message}", e);
                }
                var handler = new SocketsHttpHandler();
                handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
                    {
                        return false; // no certificate, or one for another name
                    }
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return chain.Build(new X509Certificate2(certificate));
                };
                channelOptions.HttpHandler = handler;
            }
            return GrpcChannel.ForAddress($"https://{o.Addr}", channelOptions);
        }

        /// <summary>A status code's canonical name, e.g. INVALID_ARGUMENT for InvalidArgument.</summary>
        public static string StatusName(StatusCode code)
        {
            var name = code.ToString();
            var snake = new System.Text.StringBuilder();
            for (var i = 0; i < name.Length; i++)
            {
                if (i > 0 && char.IsUpper(name[i]) && char.IsLower(name[i - 1]))
                {
                    snake.Append('_');
                }
                snake.Append(char.ToUpperInvariant(name[i]));
            }
            return snake.ToString();
        }
    }
}
