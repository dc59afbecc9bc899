import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CommandAuth } from '../../src/mqtt/commands/command-auth.js';
import { parseRequest, replyTopic } from '../../src/mqtt/commands/command-request.js';
import { CommandServer, type Command } from '../../src/mqtt/commands/command-server.js';
import { CommandsSchema } from '../../src/config/commands-schema.js';
import { ConfigError } from '../../src/config/config-error.js';
import { createTopics } from '../../src/mqtt/topics.js';
import { createLogger } from '../../src/core/logger.js';
import { tempDir } from '../helpers/fixtures.js';

const SHARED = 'shared-secret-0123456789';
const HA = 'home-assistant-secret-abcdef';
const OPS = 'ops-secret-0123456789abcdef';

function secretFile(dir: string, name: string, secret: string): string {
  const p = join(dir, name);
  writeFileSync(p, `${secret}\n`);
  return p;
}

function auth(overrides: Record<string, unknown> = {}): CommandAuth {
  const dir = tempDir();
  return new CommandAuth(
    CommandsSchema.parse({
      secret_file: secretFile(dir, 'shared', SHARED),
      clients: [
        { name: 'ha', secret_file: secretFile(dir, 'ha', HA), allow: ['read'] },
        { name: 'ops', secret_file: secretFile(dir, 'ops', OPS) },
      ],
      ...overrides,
    }),
  );
}

describe('CommandAuth', () => {
  it('defaults: read open, control needs a secret, and without any secret control is refused', () => {
    const none = new CommandAuth(CommandsSchema.parse({}));
    expect(none.decide('read', {})).toEqual({ allowed: true, client: null });
    expect(none.decide('control', {})).toEqual({ allowed: false, reason: expect.stringMatching(/none is configured \(commands\.secret_file or commands\.clients\)/) });
    expect(none.decide('control', { secret: SHARED })).toMatchObject({ allowed: false });
  });

  it('the shared secret authorises control; a wrong or missing one does not', () => {
    const a = auth();
    expect(a.decide('control', { secret: SHARED })).toEqual({ allowed: true, client: null });
    expect(a.decide('control', { secret: `${SHARED}x` })).toEqual({ allowed: false, reason: 'not authorised: wrong secret' });
    expect(a.decide('control', {})).toEqual({ allowed: false, reason: 'not authorised: control commands need "secret"' });
  });

  it('named clients use their own secret and only their classes; an unknown name reads like a wrong secret', () => {
    const a = auth();
    expect(a.decide('read', { client: 'ha', secret: HA })).toEqual({ allowed: true, client: 'ha' });
    expect(a.decide('control', { client: 'ha', secret: HA })).toEqual({ allowed: false, reason: 'not authorised: client "ha" may not use control commands' });
    expect(a.decide('control', { client: 'ops', secret: OPS })).toEqual({ allowed: true, client: 'ops' });
    // Another client's secret, or the shared one, does not make you that client.
    expect(a.decide('control', { client: 'ops', secret: HA })).toEqual({ allowed: false, reason: 'not authorised: unknown client or wrong secret' });
    expect(a.decide('control', { client: 'ops', secret: SHARED })).toMatchObject({ allowed: false });
    expect(a.decide('control', { client: 'nobody', secret: OPS })).toEqual({ allowed: false, reason: 'not authorised: unknown client or wrong secret' });
  });

  it('off refuses even a correct secret; open lets anyone in', () => {
    expect(auth({ control: 'off' }).decide('control', { secret: SHARED })).toEqual({ allowed: false, reason: expect.stringMatching(/turned off \(commands\.control: off\)/) });
    expect(auth({ control: 'open' }).decide('control', {})).toEqual({ allowed: true, client: null });
    expect(auth({ read: 'authorised' }).decide('read', {})).toMatchObject({ allowed: false });
  });

  it('an unreadable or short secret file is a ConfigError naming its key', () => {
    const dir = tempDir();
    const read = (cfg: Record<string, unknown>): string[] => {
      try {
        new CommandAuth(CommandsSchema.parse(cfg));
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems;
      }
      throw new Error('expected a ConfigError');
    };
    expect(read({ secret_file: join(dir, 'missing') })[0]).toMatch(/^commands\.secret_file: cannot read .*missing: ENOENT/);
    expect(read({ clients: [{ name: 'x', secret_file: secretFile(dir, 'short', 'hunter2') }] })[0]).toMatch(
      /^commands\.clients\[0\]\.secret_file: the secret in .* is 7 characters; use at least 16/,
    );
  });
});

describe('parseRequest', () => {
  it('takes credentials from JSON fields, or from MQTT v5 user properties, and keeps them out of the parameters', () => {
    const json = parseRequest(Buffer.from(JSON.stringify({ transaction: 't1', secret: SHARED, client: 'ops', camera: 'gate' })), undefined, 4096);
    expect(json).toEqual({ ok: true, transaction: 't1', credentials: { secret: SHARED, client: 'ops' }, params: { camera: 'gate' } });
    const v5 = parseRequest(Buffer.from('{"camera":"gate"}'), { userProperties: { secret: SHARED, client: ['ops', 'other'] } }, 4096);
    expect(v5).toEqual({ ok: true, transaction: null, credentials: { secret: SHARED, client: 'ops' }, params: { camera: 'gate' } });
    expect(parseRequest(Buffer.from('{"secret":12}'), undefined, 4096)).toEqual({ ok: false, error: 'secret: expected a string of 1 to 1024 characters' });
  });
});

describe('replyTopic', () => {
  it('honours a v5 response topic outside the base topic, with its correlation data', () => {
    const correlationData = Buffer.from('abc');
    expect(replyTopic({ responseTopic: 'ha/replies/1', correlationData }, 'ec')).toEqual({ topic: 'ha/replies/1', properties: { correlationData } });
    expect(replyTopic({ responseTopic: 'ec/dev/status' }, 'ec')).toBeUndefined();
    expect(replyTopic({ responseTopic: 'ec' }, 'ec')).toBeUndefined();
    expect(replyTopic({ responseTopic: 'a/#' }, 'ec')).toBeUndefined();
    expect(replyTopic({ responseTopic: '$SYS/x' }, 'ec')).toBeUndefined();
    expect(replyTopic({ responseTopic: 'ecx/replies' }, 'ec')).toEqual({ topic: 'ecx/replies' });
    expect(replyTopic(undefined, 'ec')).toBeUndefined();
  });
});

describe('CommandServer authorisation', () => {
  // A recording stand-in for the MQTT client (the integration tests use real mosquitto).
  function server(a: CommandAuth): { srv: CommandServer; sent: { topic: string; body: string; opts: unknown }[]; ran: string[] } {
    const sent: { topic: string; body: string; opts: unknown }[] = [];
    const ran: string[] = [];
    const commands: Record<string, Command> = {
      pause: { access: 'control', params: z.object({ camera: z.string() }).strict(), run: ({ camera }: { camera: string }) => Promise.resolve((ran.push(`pause ${camera}`), { paused: true })) },
      classify: { access: 'read', params: z.object({}).strict(), run: () => Promise.resolve((ran.push('classify'), { top: [] })) },
    };
    const srv = new CommandServer({
      logger: createLogger({ level: 'silent' }),
      config: { max_payload_bytes: 4096 },
      auth: a,
      mqtt: { subscribe: () => undefined, publish: (topic, body, opts) => void sent.push({ topic, body: String(body), opts }), topics: createTopics('ec', 'dev') },
      commands,
    });
    return { srv, sent, ran };
  }

  it('refuses before looking at parameters, runs nothing, and counts the refusal', async () => {
    const { srv, ran, sent } = server(auth());
    const r = await srv.handle('pause', Buffer.from('{"transaction":1,"nonsense":true}'));
    expect(r).toEqual({ status: 'error', data: null, error: 'not authorised: control commands need "secret"', transaction: 1 });
    expect(ran).toEqual([]);
    expect(srv.refused).toBe(1);
    expect(sent.map((s) => s.topic)).toEqual(['ec/dev/response/pause']);
    expect((await srv.handle('classify', Buffer.from('{}'))).status).toBe('ok');
    expect(ran).toEqual(['classify']);
  });

  it('an authorised v5 request is also answered on its response topic with its correlation data', async () => {
    const { srv, ran, sent } = server(auth());
    const correlationData = Buffer.from('req-7');
    const r = await srv.handle('pause', Buffer.from('{"camera":"gate"}'), { userProperties: { secret: SHARED }, responseTopic: 'ha/replies', correlationData });
    expect(r.status).toBe('ok');
    expect(ran).toEqual(['pause gate']);
    expect(sent.map((s) => [s.topic, s.opts])).toEqual([
      ['ec/dev/response/pause', { qos: 1, properties: { correlationData } }],
      ['ha/replies', { qos: 1, properties: { correlationData } }],
    ]);
    // Refused: the answer goes only to the public response topic, never where the request pointed.
    sent.length = 0;
    await srv.handle('pause', Buffer.from('{"camera":"gate"}'), { responseTopic: 'ha/replies' });
    expect(sent.map((s) => s.topic)).toEqual(['ec/dev/response/pause']);
  });
});
