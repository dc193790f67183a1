// The trace I/O layer: files written through a ".partial" name and moved into place when complete, read back with
// positional reads, file-system failures as one-line TraceIoErrors, and `turtles import` end to end on a real log.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceIoError, createTraceFile, fileSource, openTraceFile, readTextFile } from '../../../../src/replay/io/trace-file.js';
import { importToTraceFile } from '../../../../src/replay/io/import-file.js';
import { TraceFormatError, vmxOp, type TraceHeader } from '../../../../src/replay/format/index.js';
import { ChunkDecoder } from '../../../../src/replay/format/codec.js';

const dir = mkdtempSync(join(tmpdir(), 'turtles-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const header: TraceHeader = { producer: 'io test', l0Profile: 'sdm', kind: 'nested', seed: 1n };

describe('trace files', () => {
  it('write through a partial file, then read back', () => {
    const path = join(dir, 'a.trtl');
    const out = createTraceFile(path, header, { chunkEvents: 2 });
    for (let i = 0; i < 5; i++) out.writer.append(vmxOp('vmread', { field: i }));
    expect(existsSync(`${path}.partial`)).toBe(true);
    expect(existsSync(path)).toBe(false);
    const summary = out.finish();
    expect(summary).toMatchObject({ events: 5, chunks: 3 });
    expect(existsSync(`${path}.partial`)).toBe(false);
    const t = openTraceFile(path);
    try {
      expect(t.reader.header).toEqual(header);
      expect([...t.reader.seek(3)].map((e) => e.kind === 'vmx-op' && e.field)).toEqual([3, 4]);
      expect(t.reader.verify()).toMatchObject({ events: 5, chunks: 3, bytes: summary.bytes });
    } finally {
      t.close();
    }
  });

  it('abort leaves nothing behind', () => {
    const path = join(dir, 'b.trtl');
    const out = createTraceFile(path, header);
    out.writer.append(vmxOp('vmxon'));
    out.abort();
    expect(readdirSync(dir).filter((f) => f.startsWith('b.trtl'))).toEqual([]);
  });

  it('a missing file is a one-line TraceIoError', () => {
    const path = join(dir, 'missing.trtl');
    expect(() => openTraceFile(path)).toThrow(TraceIoError);
    expect(() => openTraceFile(path)).toThrow(`${path}: io: a readable file (ENOENT)`);
  });

  it('a file that is not a trace is a TraceFormatError naming the file', () => {
    const path = join(dir, 'text.trtl');
    writeFileSync(path, 'not a trace at all, just some text that is long enough to hold a footer');
    expect(() => openTraceFile(path)).toThrow(TraceFormatError);
    expect(() => openTraceFile(path)).toThrow(`${path}@0: bad-magic`);
  });

  it('positional reads stop at the end of the file', () => {
    const path = join(dir, 'short.bin');
    writeFileSync(path, Uint8Array.of(1, 2, 3));
    const s = fileSource(path);
    expect([...s.read(1, 10)]).toEqual([2, 3]);
    expect([...s.read(5, 1)]).toEqual([]);
    s.close();
  });

  it('streaming reads decode a record only when it is asked for, so a reader holds the event in hand, not its chunk', () => {
    // DESIGN.md §9 (memory constant in trace length): model replay pulls recorded events one at a time while the
    // machines re-run; a whole decoded chunk (up to 65,536 events with full VMCS maps) must never be live at once.
    const path = join(dir, 'lazy.trtl');
    const out = createTraceFile(path, header);
    for (let i = 0; i < 3000; i++) out.writer.append(vmxOp('vmread', { field: i }));
    out.finish();
    const t = openTraceFile(path);
    const begin = vi.spyOn(ChunkDecoder.prototype, 'begin');
    try {
      expect(t.reader.chunks.length).toBe(1);
      const events = t.reader.events();
      for (let k = 1; k <= 3; k++) {
        expect(events.next().value).toMatchObject({ kind: 'vmx-op', field: k - 1 });
        expect(begin).toHaveBeenCalledTimes(k);
      }
      // Seeking skips by decoding up to the target only.
      begin.mockClear();
      expect(t.reader.seek(1000).next().value).toMatchObject({ field: 1000 });
      expect(begin).toHaveBeenCalledTimes(1001);
      begin.mockClear();
      let n = 0;
      for (const _ of t.reader.events()) n++;
      expect([n, begin.mock.calls.length]).toEqual([3000, 3000]);
    } finally {
      begin.mockRestore();
      t.close();
    }
  });

  it('text inputs have a size limit', () => {
    const path = join(dir, 'big.txt');
    writeFileSync(path, 'x'.repeat(100));
    expect(() => readTextFile(path, 10)).toThrow(`${path}: io: a text file of at most 10 bytes to import, it has 100`);
    expect(readTextFile(path)).toHaveLength(100);
  });
});

describe('import to a trace file', () => {
  it('imports a real log and writes a trace with its provenance', () => {
    const src = join(import.meta.dirname, '../../../fixtures/logs/real/ftrace-jailhouse-nested-pio-loop-5.2.txt');
    const path = join(dir, 'jailhouse.trtl');
    const { result, written } = importToTraceFile(src, 'auto', path);
    expect(written.events).toBe(result.events.length);
    const t = openTraceFile(path);
    try {
      expect([...t.reader.events()]).toEqual(result.events);
      expect(t.reader.header.provenance).toMatchObject({ sourceFormat: 'trace-cmd', sourceName: 'ftrace-jailhouse-nested-pio-loop-5.2.txt', counts: result.stats });
      expect(t.reader.header.kind).toBe('nested');
    } finally {
      t.close();
    }
  });
});
