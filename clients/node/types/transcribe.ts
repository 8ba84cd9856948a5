import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Alternative as _transcribe_v1_Alternative, Alternative__Output as _transcribe_v1_Alternative__Output } from './transcribe/v1/Alternative';
import type { Control as _transcribe_v1_Control, Control__Output as _transcribe_v1_Control__Output } from './transcribe/v1/Control';
import type { Entity as _transcribe_v1_Entity, Entity__Output as _transcribe_v1_Entity__Output } from './transcribe/v1/Entity';
import type { Finalize as _transcribe_v1_Finalize, Finalize__Output as _transcribe_v1_Finalize__Output } from './transcribe/v1/Finalize';
import type { GoingAway as _transcribe_v1_GoingAway, GoingAway__Output as _transcribe_v1_GoingAway__Output } from './transcribe/v1/GoingAway';
import type { KeepAlive as _transcribe_v1_KeepAlive, KeepAlive__Output as _transcribe_v1_KeepAlive__Output } from './transcribe/v1/KeepAlive';
import type { Keyword as _transcribe_v1_Keyword, Keyword__Output as _transcribe_v1_Keyword__Output } from './transcribe/v1/Keyword';
import type { ModelInfo as _transcribe_v1_ModelInfo, ModelInfo__Output as _transcribe_v1_ModelInfo__Output } from './transcribe/v1/ModelInfo';
import type { Reconnected as _transcribe_v1_Reconnected, Reconnected__Output as _transcribe_v1_Reconnected__Output } from './transcribe/v1/Reconnected';
import type { Reconnecting as _transcribe_v1_Reconnecting, Reconnecting__Output as _transcribe_v1_Reconnecting__Output } from './transcribe/v1/Reconnecting';
import type { Replacement as _transcribe_v1_Replacement, Replacement__Output as _transcribe_v1_Replacement__Output } from './transcribe/v1/Replacement';
import type { Result as _transcribe_v1_Result, Result__Output as _transcribe_v1_Result__Output } from './transcribe/v1/Result';
import type { ResultMetadata as _transcribe_v1_ResultMetadata, ResultMetadata__Output as _transcribe_v1_ResultMetadata__Output } from './transcribe/v1/ResultMetadata';
import type { ResumePoint as _transcribe_v1_ResumePoint, ResumePoint__Output as _transcribe_v1_ResumePoint__Output } from './transcribe/v1/ResumePoint';
import type { SearchHit as _transcribe_v1_SearchHit, SearchHit__Output as _transcribe_v1_SearchHit__Output } from './transcribe/v1/SearchHit';
import type { SearchResult as _transcribe_v1_SearchResult, SearchResult__Output as _transcribe_v1_SearchResult__Output } from './transcribe/v1/SearchResult';
import type { SessionStarted as _transcribe_v1_SessionStarted, SessionStarted__Output as _transcribe_v1_SessionStarted__Output } from './transcribe/v1/SessionStarted';
import type { SessionSummary as _transcribe_v1_SessionSummary, SessionSummary__Output as _transcribe_v1_SessionSummary__Output } from './transcribe/v1/SessionSummary';
import type { SpeechStarted as _transcribe_v1_SpeechStarted, SpeechStarted__Output as _transcribe_v1_SpeechStarted__Output } from './transcribe/v1/SpeechStarted';
import type { StreamTranscribeRequest as _transcribe_v1_StreamTranscribeRequest, StreamTranscribeRequest__Output as _transcribe_v1_StreamTranscribeRequest__Output } from './transcribe/v1/StreamTranscribeRequest';
import type { StreamTranscribeResponse as _transcribe_v1_StreamTranscribeResponse, StreamTranscribeResponse__Output as _transcribe_v1_StreamTranscribeResponse__Output } from './transcribe/v1/StreamTranscribeResponse';
import type { StreamingConfig as _transcribe_v1_StreamingConfig, StreamingConfig__Output as _transcribe_v1_StreamingConfig__Output } from './transcribe/v1/StreamingConfig';
import type { TranscribeServiceClient as _transcribe_v1_TranscribeServiceClient, TranscribeServiceDefinition as _transcribe_v1_TranscribeServiceDefinition } from './transcribe/v1/TranscribeService';
import type { UpstreamEvent as _transcribe_v1_UpstreamEvent, UpstreamEvent__Output as _transcribe_v1_UpstreamEvent__Output } from './transcribe/v1/UpstreamEvent';
import type { UpstreamMetadata as _transcribe_v1_UpstreamMetadata, UpstreamMetadata__Output as _transcribe_v1_UpstreamMetadata__Output } from './transcribe/v1/UpstreamMetadata';
import type { UtteranceEnd as _transcribe_v1_UtteranceEnd, UtteranceEnd__Output as _transcribe_v1_UtteranceEnd__Output } from './transcribe/v1/UtteranceEnd';
import type { Word as _transcribe_v1_Word, Word__Output as _transcribe_v1_Word__Output } from './transcribe/v1/Word';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  transcribe: {
    v1: {
      Alternative: MessageTypeDefinition<_transcribe_v1_Alternative, _transcribe_v1_Alternative__Output>
      AudioEncoding: EnumTypeDefinition
      Control: MessageTypeDefinition<_transcribe_v1_Control, _transcribe_v1_Control__Output>
      Entity: MessageTypeDefinition<_transcribe_v1_Entity, _transcribe_v1_Entity__Output>
      Finalize: MessageTypeDefinition<_transcribe_v1_Finalize, _transcribe_v1_Finalize__Output>
      GoingAway: MessageTypeDefinition<_transcribe_v1_GoingAway, _transcribe_v1_GoingAway__Output>
      KeepAlive: MessageTypeDefinition<_transcribe_v1_KeepAlive, _transcribe_v1_KeepAlive__Output>
      Keyword: MessageTypeDefinition<_transcribe_v1_Keyword, _transcribe_v1_Keyword__Output>
      ModelInfo: MessageTypeDefinition<_transcribe_v1_ModelInfo, _transcribe_v1_ModelInfo__Output>
      Reconnected: MessageTypeDefinition<_transcribe_v1_Reconnected, _transcribe_v1_Reconnected__Output>
      Reconnecting: MessageTypeDefinition<_transcribe_v1_Reconnecting, _transcribe_v1_Reconnecting__Output>
      Redaction: EnumTypeDefinition
      Replacement: MessageTypeDefinition<_transcribe_v1_Replacement, _transcribe_v1_Replacement__Output>
      Result: MessageTypeDefinition<_transcribe_v1_Result, _transcribe_v1_Result__Output>
      ResultMetadata: MessageTypeDefinition<_transcribe_v1_ResultMetadata, _transcribe_v1_ResultMetadata__Output>
      ResumePoint: MessageTypeDefinition<_transcribe_v1_ResumePoint, _transcribe_v1_ResumePoint__Output>
      SearchHit: MessageTypeDefinition<_transcribe_v1_SearchHit, _transcribe_v1_SearchHit__Output>
      SearchResult: MessageTypeDefinition<_transcribe_v1_SearchResult, _transcribe_v1_SearchResult__Output>
      SessionStarted: MessageTypeDefinition<_transcribe_v1_SessionStarted, _transcribe_v1_SessionStarted__Output>
      SessionSummary: MessageTypeDefinition<_transcribe_v1_SessionSummary, _transcribe_v1_SessionSummary__Output>
      SpeechStarted: MessageTypeDefinition<_transcribe_v1_SpeechStarted, _transcribe_v1_SpeechStarted__Output>
      StreamTranscribeRequest: MessageTypeDefinition<_transcribe_v1_StreamTranscribeRequest, _transcribe_v1_StreamTranscribeRequest__Output>
      StreamTranscribeResponse: MessageTypeDefinition<_transcribe_v1_StreamTranscribeResponse, _transcribe_v1_StreamTranscribeResponse__Output>
      StreamingConfig: MessageTypeDefinition<_transcribe_v1_StreamingConfig, _transcribe_v1_StreamingConfig__Output>
      TranscribeService: SubtypeConstructor<typeof grpc.Client, _transcribe_v1_TranscribeServiceClient> & { service: _transcribe_v1_TranscribeServiceDefinition }
      UpstreamEvent: MessageTypeDefinition<_transcribe_v1_UpstreamEvent, _transcribe_v1_UpstreamEvent__Output>
      UpstreamMetadata: MessageTypeDefinition<_transcribe_v1_UpstreamMetadata, _transcribe_v1_UpstreamMetadata__Output>
      UtteranceEnd: MessageTypeDefinition<_transcribe_v1_UtteranceEnd, _transcribe_v1_UtteranceEnd__Output>
      Word: MessageTypeDefinition<_transcribe_v1_Word, _transcribe_v1_Word__Output>
    }
  }
}

