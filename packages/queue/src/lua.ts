import { readFileSync, readdirSync } from 'node:fs';
import type { Redis } from 'ioredis';

type LuaArgument = string | number | Buffer;
type LuaCommand = (...keysThenArgs: LuaArgument[]) => Promise<unknown>;

const SCRIPT_FILE = /^([A-Za-z][A-Za-z0-9]*)-(\d+)\.lua$/;
const INCLUDE_LINE = /^--- @include "([^"]+)"$/gm;

/**
 * Lua scripts kept as files, BullMQ's convention (its src/commands/*.lua): one script per
 * `<name>-<number of keys>.lua`, every KEYS and ARGV named in its header, shared functions in
 * `includes/` pulled in by `--- @include "includes/<name>"` lines. Registered with ioredis's
 * defineCommand, which runs them by EVALSHA and falls back to EVAL when Redis lost its script
 * cache (a restart).
 *
 * `folder` is resolved by the caller relative to its package root (`../src/lua/` from a module
 * one level below it), so the same files serve the TypeScript sources and the built dist/.
 */
export class LuaScripts<Name extends string> {
  private readonly scripts = new Map<Name, { numberOfKeys: number; lua: string }>();

  constructor(folder: URL, names: readonly Name[]) {
    const found = new Map<string, { numberOfKeys: number; file: string }>();
    for (const file of readdirSync(folder)) {
      const match = SCRIPT_FILE.exec(file);
      if (match !== null) found.set(match[1]!, { numberOfKeys: Number(match[2]), file });
    }
    for (const name of names) {
      const script = found.get(name);
      if (script === undefined) throw new Error(`no Lua script ${name}-<keys>.lua in ${folder.pathname}`);
      const source = readFileSync(new URL(script.file, folder), 'utf8');
      const lua = source.replace(INCLUDE_LINE, (_, include: string) =>
        readFileSync(new URL(`${include}.lua`, folder), 'utf8'),
      );
      this.scripts.set(name, { numberOfKeys: script.numberOfKeys, lua });
    }
  }

  /** Defines every script as a command of this connection (`name` and `nameBuffer`). */
  defineOn(redis: Redis): void {
    for (const [name, { numberOfKeys, lua }] of this.scripts) redis.defineCommand(name, { numberOfKeys, lua });
  }

  /** Runs a script defined on the connection; string replies. */
  run(redis: Redis, name: Name, keys: readonly string[], args: readonly LuaArgument[]): Promise<unknown> {
    return this.command(redis, name, keys, '')(...keys, ...args);
  }

  /** The same, with bulk replies as Buffers (template bytes must not go through UTF-8). */
  runBuffer(redis: Redis, name: Name, keys: readonly string[], args: readonly LuaArgument[]): Promise<unknown> {
    return this.command(redis, name, keys, 'Buffer')(...keys, ...args);
  }

  private command(redis: Redis, name: Name, keys: readonly string[], suffix: '' | 'Buffer'): LuaCommand {
    const script = this.scripts.get(name);
    if (script === undefined || keys.length !== script.numberOfKeys) {
      throw new Error(`Lua script ${name} takes ${script?.numberOfKeys} keys, not ${keys.length}`);
    }
    const command = (redis as unknown as Record<string, LuaCommand | undefined>)[`${name}${suffix}`];
    if (command === undefined) throw new Error(`Lua script ${name} is not defined on this connection`);
    return command.bind(redis);
  }
}
