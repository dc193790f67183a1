// Typed handle on the generated protobufjs code: the runtime module is emitted without type checking, so its
// types come from the pbts declarations next to it. Every other module reaches protobuf through here.
// Must not: add behaviour; this only binds generated/trace-pb.ts to generated/trace-pb-types.d.ts.
import { turtles as runtime } from './generated/trace-pb.js';
import type { turtles } from './generated/trace-pb-types.js';
import type Long from 'long';

export const pb = (runtime as unknown as typeof turtles).trace.v1;

export type PbLong = Long;
export type PbEvent = turtles.trace.v1.Event.$Properties;
export type PbExitInfo = turtles.trace.v1.ExitInfo.$Properties;
export type PbHeader = turtles.trace.v1.Header.$Properties;
