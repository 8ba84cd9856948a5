using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Transcribe.V1;

namespace Transcribe.Client;

/// <summary>How a <see cref="TranscribeClient"/> connects.</summary>
public sealed record TranscribeClientOptions
{
    /// <summary>Sent as <c>authorization: Bearer TOKEN</c>.</summary>
    public string? Token { get; init; }

    /// <summary>TLS with the system's roots (or <see cref="CaFile"/>'s).</summary>
    public bool Tls { get; init; }

    /// <summary>PEM roots to trust instead of the system's (implies TLS).</summary>
    public string? CaFile { get; init; }

    public IReadOnlyList<KeyValuePair<string, string>> Metadata { get; init; } = [];

    public ResumeOptions Resume { get; init; } = new();
}

/// <summary>One channel to a gateway address (behind a balancer: any of its replicas).</summary>
public sealed class TranscribeClient : IDisposable
{
    public const string DefaultAddress = "127.0.0.1:50051";

    readonly GrpcChannel _channel;
    readonly TranscribeService.TranscribeServiceClient _client;

    /// <summary>Connects lazily to <paramref name="address"/> (HOST:PORT).</summary>
    /// <exception cref="IOException">The CA file cannot be read.</exception>
    public TranscribeClient(string address = DefaultAddress, TranscribeClientOptions? options = null)
    {
        Options = options ?? new TranscribeClientOptions();
        _channel = CreateChannel(address, Options);
        _client = new TranscribeService.TranscribeServiceClient(_channel);
    }

    public TranscribeClientOptions Options { get; }

    /// <summary>Opens a stream; <paramref name="config"/> is sent first. Cancelling the token cancels it.</summary>
    public TranscribeStream Open(StreamingConfig config, CancellationToken cancellationToken = default) =>
        new(this, config, cancellationToken);

    /// <summary>
    /// Streams <paramref name="audio"/> and yields every response. When <paramref name="audio"/>
    /// throws, the stream is half-closed there and its exception is thrown after the results of
    /// the audio sent. <paramref name="configure"/> sees the stream first (to subscribe to its events).
    /// </summary>
    public async IAsyncEnumerable<StreamTranscribeResponse> TranscribeAsync(
        IAsyncEnumerable<ReadOnlyMemory<byte>> audio,
        StreamingConfig config,
        Action<TranscribeStream>? configure = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var stream = Open(config, cancellationToken);
        configure?.Invoke(stream);
        Exception? audioError = null;
        var writer = Task.Run(async () =>
        {
            try
            {
                await foreach (var chunk in audio.WithCancellation(cancellationToken))
                {
                    if (stream.IsClosed)
                    {
                        return;
                    }
                    await stream.SendAsync(chunk, cancellationToken);
                }
            }
            catch (Exception e) when (!stream.IsClosed && !cancellationToken.IsCancellationRequested)
            {
                audioError = e;
            }
            catch (Exception) when (stream.IsClosed || cancellationToken.IsCancellationRequested)
            {
                // the stream is over: its status says why
            }
            finally
            {
                if (!stream.IsClosed)
                {
                    await stream.CompleteAsync();
                }
            }
        }, CancellationToken.None);
        await foreach (var response in stream.ReadAllAsync(cancellationToken))
        {
            yield return response;
        }
        // The gateway ends a call with OK only after the half-close, so the writer is done by now.
        await writer;
        if (audioError is not null)
        {
            ExceptionDispatchInfo.Throw(audioError);
        }
    }

    internal AsyncDuplexStreamingCall<StreamTranscribeRequest, StreamTranscribeResponse> StartCall(
        CancellationToken cancellationToken)
    {
        var headers = new Metadata();
        if (Options.Token is { Length: > 0 } token)
        {
            headers.Add("authorization", $"Bearer {token}");
        }
        foreach (var (key, value) in Options.Metadata)
        {
            headers.Add(key, value);
        }
        return _client.StreamTranscribe(headers, cancellationToken: cancellationToken);
    }

    public void Dispose() => _channel.Dispose();

    /// <summary>Plaintext by default; TLS with Tls, trusting only CaFile's roots if given.</summary>
    static GrpcChannel CreateChannel(string address, TranscribeClientOptions o)
    {
        if (!o.Tls && o.CaFile is null)
        {
            return GrpcChannel.ForAddress($"http://{address}");
        }
        var channelOptions = new GrpcChannelOptions();
        if (o.CaFile is not null)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(o.CaFile);
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
        return GrpcChannel.ForAddress($"https://{address}", channelOptions);
    }
}
