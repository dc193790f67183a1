// The trace format's error type: every malformed, truncated, oversized or mismatched input becomes a
// TraceFormatError with a stable `kind` and a one-line message naming the file, the byte offset or event index,
// and what was expected. A thrown non-TraceFormatError from the reader or writer is a turtles bug.
// Must not: carry stack-trace text or multi-line messages into `message`.

export type TraceFormatErrorKind =
  | 'truncated'            // the file ends before a structure it announces
  | 'bad-magic'            // not a turtles trace (or a structure's magic is damaged)
  | 'unsupported-version'  // a format version this reader does not read
  | 'oversized'            // a length field exceeds the format's limits
  | 'checksum'             // a CRC does not match
  | 'corrupt'              // structurally inconsistent data (index, chunk, record)
  | 'bad-record'           // an event record that does not decode
  | 'out-of-range'         // seek past the end
  | 'invalid-event';       // the writer was handed an event the format cannot hold

export class TraceFormatError extends Error {
  override readonly name = 'TraceFormatError';
  constructor(
    readonly kind: TraceFormatErrorKind,
    /** File (or stream) name as given to the reader/writer. */
    readonly file: string,
    /** Where: byte offset in the file, and/or event index. */
    readonly at: { readonly offset?: number; readonly event?: number },
    /** What was expected, in a few words. */
    readonly expected: string,
  ) {
    super(`${file}${TraceFormatError.where(at)}: ${kind}: ${expected}`);
  }

  static where(at: { readonly offset?: number; readonly event?: number }): string {
    const parts: string[] = [];
    if (at.event !== undefined) parts.push(`#${at.event}`);
    if (at.offset !== undefined) parts.push(`@${at.offset}`);
    return parts.join('');
  }
}

export function isTraceFormatError(e: unknown): e is TraceFormatError {
  return e instanceof TraceFormatError;
}
