import type * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import type { StreamTranscribeRequest as _transcribe_v1_StreamTranscribeRequest, StreamTranscribeRequest__Output as _transcribe_v1_StreamTranscribeRequest__Output } from '../../transcribe/v1/StreamTranscribeRequest';
import type { StreamTranscribeResponse as _transcribe_v1_StreamTranscribeResponse, StreamTranscribeResponse__Output as _transcribe_v1_StreamTranscribeResponse__Output } from '../../transcribe/v1/StreamTranscribeResponse';
export interface TranscribeServiceClient extends grpc.Client {
    StreamTranscribe(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_transcribe_v1_StreamTranscribeRequest, _transcribe_v1_StreamTranscribeResponse__Output>;
    StreamTranscribe(options?: grpc.CallOptions): grpc.ClientDuplexStream<_transcribe_v1_StreamTranscribeRequest, _transcribe_v1_StreamTranscribeResponse__Output>;
    streamTranscribe(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_transcribe_v1_StreamTranscribeRequest, _transcribe_v1_StreamTranscribeResponse__Output>;
    streamTranscribe(options?: grpc.CallOptions): grpc.ClientDuplexStream<_transcribe_v1_StreamTranscribeRequest, _transcribe_v1_StreamTranscribeResponse__Output>;
}
export interface TranscribeServiceHandlers extends grpc.UntypedServiceImplementation {
    StreamTranscribe: grpc.handleBidiStreamingCall<_transcribe_v1_StreamTranscribeRequest__Output, _transcribe_v1_StreamTranscribeResponse>;
}
export interface TranscribeServiceDefinition extends grpc.ServiceDefinition {
    StreamTranscribe: MethodDefinition<_transcribe_v1_StreamTranscribeRequest, _transcribe_v1_StreamTranscribeResponse, _transcribe_v1_StreamTranscribeRequest__Output, _transcribe_v1_StreamTranscribeResponse__Output>;
}
