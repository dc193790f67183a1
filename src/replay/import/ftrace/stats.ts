// Line accounting shared by every importer: each input line ends up either `mapped` (it produced a modelled
// event) or counted under exactly one reason in `skipped`, so `lines = mapped + Σ skipped` always holds and
// nothing is dropped silently. Reasons are stable strings ("blank", "raw:kvm_fpu", "unmapped:…").
// Must not: decide what a line means; importers do.

export interface ImportStats {
  /** Physical input lines. */
  readonly lines: number;
  /** Lines that produced (or are the first line of a record that produced) a modelled event. */
  readonly mapped: number;
  /** Every other line, by reason. */
  readonly skipped: Readonly<Record<string, number>>;
}

export class LineAccount {
  private mappedCount = 0;
  private readonly reasons = new Map<string, number>();
  private total = 0;

  mapped(n = 1): void {
    this.mappedCount += n;
    this.total += n;
  }

  skip(reason: string, n = 1): void {
    if (n === 0) return;
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + n);
    this.total += n;
  }

  get lines(): number {
    return this.total;
  }

  stats(): ImportStats {
    const skipped = Object.fromEntries([...this.reasons.keys()].sort().map((k) => [k, this.reasons.get(k)!]));
    return { lines: this.total, mapped: this.mappedCount, skipped };
  }
}

/** Physical lines of a text (LF or CRLF); a final newline does not start another line. */
export function splitLines(text: string): string[] {
  const rows = text.split('\n').map((r) => (r.endsWith('\r') ? r.slice(0, -1) : r));
  if (rows.length > 0 && rows[rows.length - 1] === '') rows.pop();
  return rows;
}
