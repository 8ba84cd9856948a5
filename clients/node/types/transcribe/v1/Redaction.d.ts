export declare const Redaction: {
    readonly REDACTION_UNSPECIFIED: "REDACTION_UNSPECIFIED";
    readonly REDACTION_PCI: "REDACTION_PCI";
    readonly REDACTION_NUMBERS: "REDACTION_NUMBERS";
    readonly REDACTION_AGGRESSIVE_NUMBERS: "REDACTION_AGGRESSIVE_NUMBERS";
    readonly REDACTION_SSN: "REDACTION_SSN";
};
export type Redaction = 'REDACTION_UNSPECIFIED' | 0 | 'REDACTION_PCI' | 1 | 'REDACTION_NUMBERS' | 2 | 'REDACTION_AGGRESSIVE_NUMBERS' | 3 | 'REDACTION_SSN' | 4;
export type Redaction__Output = typeof Redaction[keyof typeof Redaction];
