// Original file: ../../proto/transcribe/v1/transcribe.proto

export const Redaction = {
  REDACTION_UNSPECIFIED: 'REDACTION_UNSPECIFIED',
  REDACTION_PCI: 'REDACTION_PCI',
  REDACTION_NUMBERS: 'REDACTION_NUMBERS',
  REDACTION_AGGRESSIVE_NUMBERS: 'REDACTION_AGGRESSIVE_NUMBERS',
  REDACTION_SSN: 'REDACTION_SSN',
} as const;

export type Redaction =
  | 'REDACTION_UNSPECIFIED'
  | 0
  | 'REDACTION_PCI'
  | 1
  | 'REDACTION_NUMBERS'
  | 2
  | 'REDACTION_AGGRESSIVE_NUMBERS'
  | 3
  | 'REDACTION_SSN'
  | 4

export type Redaction__Output = typeof Redaction[keyof typeof Redaction]
