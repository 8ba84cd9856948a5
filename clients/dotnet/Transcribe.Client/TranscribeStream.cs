using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Transcribe.V1;

namespace Transcribe.Client;

/// <summary>Before a resumed call is opened.</summary>
public sealed class ResumingEventArgs(
    int attempt, TranscribeException error, ResumePoint resumePoint, TimeSpan delay, long resendBytes,
    StreamTranscribeResponse? summary) : EventArgs
{
    public int Attempt { get; } = attempt;
    public TranscribeException Error { get; } = error;
    public ResumePoint ResumePoint { get; } = resumePoint;
    public TimeSpan Delay { get; } = delay;
    public long ResendBytes { get; } = resendBytes;

    /// <summary>The failed call's summary (not yielded), or null.</summary>
    public StreamTranscribeResponse? Summary { get; } = summary;
}

/// <summary>A resumed call's session started.</summary>
public sealed class ResumedEventArgs(int attempt, string sessionId, double startOffsetSeconds) : EventArgs
{
    public int Attempt { get; } = attempt;
    public string SessionId { get; } = sessionId;
    public double StartOffsetSeconds { get; } = startOffsetSeconds;
}

/// <summary>
/// One transcription: <see cref="SendAsync"/> audio, <see cref="FinalizeAsync"/>,
/// <see cref="CompleteAsync"/>, and read <see cref="ReadAllAsync"/>. When the gateway ends the call
/// UNAVAILABLE with a ResumePoint, a new call is opened (after a backoff) with
/// <c>start_offset_seconds</c> set to the committed time and the kept audio from the committed byte
/// resent: the reader sees one session (a resumed call's <c>session_started</c> and a failed
/// call's summary are not yielded). Await each send before the next.
/// </summary>
public sealed class TranscribeStream : IAsyncDisposable
{
    const int ReadAhead = 64;

    readonly TranscribeClient _owner;
    readonly StreamingConfig _config;
    readonly ResumeOptions _resume;
    readonly int? _frame;
    readonly KeptAudio _kept;
    readonly Channel<StreamTranscribeResponse> _responses =
        System.Threading.Channels.Channel.CreateBounded<StreamTranscribeResponse>(ReadAhead);
    readonly SemaphoreSlim _writeLock = new(1, 1);
    readonly CancellationTokenSource _cts;
    readonly Dictionary<uint, double> _commits = [];
    AsyncDuplexStreamingCall<StreamTranscribeRequest, StreamTranscribeResponse>? _call;
    Task _ready;
    volatile bool _done;
    Exception? _error;
    bool _completed;
    bool _halfClosed;
    int _calls;
    bool _started;
    int _attempt;
    long _streamStartByte;
    double _streamStartOffset;

    internal TranscribeStream(TranscribeClient owner, StreamingConfig config, CancellationToken cancellationToken)
    {
        _owner = owner;
        _config = config.Clone();
        _resume = owner.Options.Resume;
        _frame = Resumption.FrameBytes(_config);
        var bytesPerSecond = _frame is { } frame ? (double)frame * _config.SampleRate : 0;
        // Containerised audio cannot be cut at a time: nothing is kept and nothing resumed.
        _kept = new KeptAudio(_resume.Enabled ? (long)(_resume.MaxBufferSeconds * bytesPerSecond) : 0);
        _streamStartOffset = _config.StartOffsetSeconds;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _ready = OpenCallAsync(_config, []);
    }

    public event EventHandler<ResumingEventArgs>? Resuming;
    public event EventHandler<ResumedEventArgs>? Resumed;

    /// <summary>True once the stream is over (ended, failed or cancelled).</summary>
    public bool IsClosed => _done;

    /// <summary>Sends one chunk of audio (kept until committed, for a resume).</summary>
    public Task SendAsync(ReadOnlyMemory<byte> audio, CancellationToken cancellationToken = default)
    {
        if (_completed)
        {
            throw new InvalidOperationException("SendAsync after CompleteAsync");
        }
        return audio.IsEmpty
            ? Task.CompletedTask
            : WriteAsync(new StreamTranscribeRequest { Audio = ByteString.CopyFrom(audio.Span) }, audio, cancellationToken);
    }

    /// <summary>Asks for the results of the audio sent so far to come back final.</summary>
    public Task FinalizeAsync(CancellationToken cancellationToken = default) =>
        WriteAsync(new StreamTranscribeRequest { Control = new Control { Finalize = new Finalize() } }, null, cancellationToken);

    /// <summary>Half-closes: no more audio; the remaining results follow, then the stream ends.</summary>
    public async Task CompleteAsync()
    {
        _completed = true;
        while (true)
        {
            var ready = _ready;
            await ready;
            await _writeLock.WaitAsync();
            try
            {
                if (!ReferenceEquals(ready, _ready))
                {
                    continue; // a resume began meanwhile; it half-closes the new call itself
                }
                await HalfCloseAsync();
                return;
            }
            finally
            {
                _writeLock.Release();
            }
        }
    }

    /// <summary>The responses, across resumes; a failure throws <see cref="TranscribeException"/> at the end.</summary>
    public async IAsyncEnumerable<StreamTranscribeResponse> ReadAllAsync(
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var response in _responses.Reader.ReadAllAsync(cancellationToken))
        {
            yield return response;
        }
        if (_error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_error);
        }
    }

    /// <summary>Cancels the stream.</summary>
    public void Cancel() => _cts.Cancel();

    public ValueTask DisposeAsync()
    {
        _cts.Cancel();
        _call?.Dispose();
        _cts.Dispose();
        return ValueTask.CompletedTask;
    }

    async Task WriteAsync(StreamTranscribeRequest request, ReadOnlyMemory<byte>? audio, CancellationToken cancellationToken)
    {
        while (true)
        {
            var ready = _ready;
            await ready;
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                if (!ReferenceEquals(ready, _ready))
                {
                    continue; // a resume began meanwhile: wait for its resend first
                }
                if (_done)
                {
                    throw _error ?? new InvalidOperationException("the stream is over");
                }
                if (audio is { } bytes)
                {
                    lock (_kept) // the reader drops committed audio from its own task
                    {
                        _kept.Append(bytes.Span);
                    }
                }
                try
                {
                    await _call!.RequestStream.WriteAsync(request);
                }
                catch (Exception e) when (e is RpcException or InvalidOperationException or OperationCanceledException)
                {
                    // The call is failing: the audio is kept for a resend, or its status says why.
                }
                return;
            }
            finally
            {
                _writeLock.Release();
            }
        }
    }

    /// <summary>Opens a call, starts reading it, sends the config and <paramref name="replay"/>.</summary>
    async Task OpenCallAsync(StreamingConfig config, IReadOnlyList<ReadOnlyMemory<byte>> replay)
    {
        var previous = _call;
        var call = _owner.StartCall(_cts.Token);
        _call = call;
        previous?.Dispose();
        _calls += 1;
        _started = false;
        _halfClosed = false;
        _ = PumpAsync(call);
        try
        {
            await call.RequestStream.WriteAsync(new StreamTranscribeRequest { Config = config });
            foreach (var chunk in replay)
            {
                await call.RequestStream.WriteAsync(new StreamTranscribeRequest { Audio = ByteString.CopyFrom(chunk.Span) });
            }
            if (_completed)
            {
                await HalfCloseAsync();
            }
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or OperationCanceledException)
        {
            // The new call failed too: PumpAsync reads its status and decides.
        }
    }

    async Task HalfCloseAsync()
    {
        if (_halfClosed || _done || _call is null)
        {
            return;
        }
        _halfClosed = true;
        try
        {
            await _call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or OperationCanceledException)
        {
            // the call is over: its status says why
        }
    }

    async Task PumpAsync(AsyncDuplexStreamingCall<StreamTranscribeRequest, StreamTranscribeResponse> call)
    {
        // A call's summary is its last response: held until its status says whether the
        // transcription is over (then it is yielded) or goes on on a new call.
        StreamTranscribeResponse? summary = null;
        try
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync(_cts.Token))
            {
                if (!Accept(response))
                {
                    continue;
                }
                if (response.ResponseCase == StreamTranscribeResponse.ResponseOneofCase.Summary)
                {
                    summary = response;
                    continue;
                }
                await _responses.Writer.WriteAsync(response, _cts.Token);
            }
            if (summary is not null)
            {
                await _responses.Writer.WriteAsync(summary, _cts.Token);
            }
            Finish(null);
        }
        catch (RpcException e) when (!_cts.IsCancellationRequested)
        {
            var error = TranscribeException.FromRpc(e);
            var point = ResumePointFor(error);
            if (!_resume.Enabled || _attempt >= _resume.MaxAttempts || !Resumption.ShouldResume(error.StatusCode, point))
            {
                if (summary is not null)
                {
                    await _responses.Writer.WriteAsync(summary);
                }
                Finish(error);
                return;
            }
            _ready = ResumeAsync(error, point!, summary);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            Finish(new TranscribeException(StatusCode.Cancelled, "the stream was cancelled", inner: e));
        }
        catch (Exception e)
        {
            Finish(e);
        }
    }

    /// <summary>Tracks commits and resumes; false for a response the reader never sees.</summary>
    bool Accept(StreamTranscribeResponse response)
    {
        if (response.ResponseCase == StreamTranscribeResponse.ResponseOneofCase.SessionStarted)
        {
            _started = true;
            if (_calls > 1)
            {
                Resumed?.Invoke(this, new ResumedEventArgs(_attempt, response.SessionStarted.SessionId, _streamStartOffset));
                return false;
            }
        }
        if (response.ResponseCase == StreamTranscribeResponse.ResponseOneofCase.Result &&
            response.Result.IsFinal && _frame is { } frame)
        {
            var result = response.Result;
            var end = result.StartSeconds + result.DurationSeconds;
            _commits[result.ChannelIndex] = Math.Max(end, _commits.GetValueOrDefault(result.ChannelIndex));
            if (_commits.Count >= Math.Max(_config.Channels, 1u))
            {
                var position = Resumption.KeepFromByte(
                    _streamStartByte, _streamStartOffset, _commits.Values.Min(), _config.SampleRate, frame);
                if (position > _streamStartByte)
                {
                    _attempt = 0; // progress: the count starts again
                }
                lock (_kept)
                {
                    _kept.DropBefore(position);
                }
            }
        }
        return true;
    }

    /// <summary>
    /// Where to resume: the error's ResumePoint; or, for a resumed call that failed before its
    /// session started (a balancer with no replica ready yet), the point it resumed from.
    /// </summary>
    ResumePoint? ResumePointFor(TranscribeException error)
    {
        if (error.ResumePoint is not null)
        {
            return error.ResumePoint;
        }
        return _calls > 1 && !_started
            ? new ResumePoint { CommittedSeconds = _streamStartOffset, CommittedBytes = 0 }
            : null;
    }

    async Task ResumeAsync(TranscribeException error, ResumePoint point, StreamTranscribeResponse? summary)
    {
        try
        {
            var plan = Resumption.Plan(_frame, _streamStartByte, _kept.KeptFromByte, _kept.SentBytes, point);
            if (!plan.Resumable)
            {
                Finish(error);
                return;
            }
            _attempt += 1;
            var delay = Resumption.Backoff(_attempt, _resume, Random.Shared.NextDouble());
            Resuming?.Invoke(this, new ResumingEventArgs(_attempt, error, point, delay, plan.ResendBytes, summary));
            await Task.Delay(delay, _cts.Token);
            await _writeLock.WaitAsync(_cts.Token);
            try
            {
                // Writes that were under way have been kept by now: plan again with them.
                plan = Resumption.Plan(_frame, _streamStartByte, _kept.KeptFromByte, _kept.SentBytes, point);
                if (!plan.Resumable)
                {
                    Finish(error);
                    return;
                }
                IReadOnlyList<ReadOnlyMemory<byte>> replay;
                lock (_kept)
                {
                    _kept.DropBefore(plan.ResendFromByte);
                    replay = _kept.From(plan.ResendFromByte);
                }
                _streamStartByte = plan.ResendFromByte;
                _streamStartOffset = plan.StartOffsetSeconds;
                _commits.Clear();
                var config = _config.Clone();
                config.StartOffsetSeconds = plan.StartOffsetSeconds;
                await OpenCallAsync(config, replay);
            }
            finally
            {
                _writeLock.Release();
            }
        }
        catch (OperationCanceledException e)
        {
            Finish(new TranscribeException(StatusCode.Cancelled, "cancelled while resuming", inner: e));
        }
        catch (Exception e)
        {
            Finish(e);
        }
    }

    void Finish(Exception? error)
    {
        if (_done)
        {
            return;
        }
        _error = error;
        _done = true;
        _responses.Writer.TryComplete();
    }
}
