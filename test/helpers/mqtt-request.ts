import type { IClientOptions, IClientPublishOptions, MqttClient } from 'mqtt';
import { connectAsync } from 'mqtt';

export interface Response {
  status: 'ok' | 'error';
  data: unknown;
  error: string | null;
  transaction: string | number | null;
}

/** A real MQTT client that sends daemon commands and waits for the matching response. */
export class Requester {
  private readonly pending = new Map<string, (r: Response) => void>();
  readonly responses: { topic: string; body: Response }[] = [];
  private n = 0;

  private constructor(
    private readonly client: MqttClient,
    private readonly root: string,
    /** Credentials every `send` carries as JSON fields (`secret`, `client`). */
    private readonly auth: { secret?: string; client?: string },
  ) {
    client.on('message', (topic, payload) => {
      let body: Response;
      try {
        body = JSON.parse(payload.toString()) as Response;
      } catch {
        return;
      }
      this.responses.push({ topic, body });
      const key = `${topic}|${String(body.transaction)}`;
      this.pending.get(key)?.(body);
      this.pending.delete(key);
    });
  }

  static async connect(
    url: string,
    root: string,
    opts: { secret?: string; client?: string; mqtt?: IClientOptions } = {},
  ): Promise<Requester> {
    const client = await connectAsync(url, { clean: true, reconnectPeriod: 200, ...opts.mqtt });
    await client.subscribeAsync(`${root}/response/+`, { qos: 1 });
    return new Requester(client, root, { ...(opts.secret ? { secret: opts.secret } : {}), ...(opts.client ? { client: opts.client } : {}) });
  }

  /** Sends `{transaction, ...params}` to request/<command> and resolves with the response. */
  async send(command: string, params: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<Response> {
    const transaction = `t${++this.n}`;
    return this.sendRaw(command, JSON.stringify({ transaction, ...this.auth, ...params }), transaction, timeoutMs);
  }

  async sendRaw(
    command: string,
    payload: string | Buffer,
    transaction: string | null,
    timeoutMs = 15_000,
    publish: IClientPublishOptions = {},
  ): Promise<Response> {
    const key = `${this.root}/response/${command}|${String(transaction)}`;
    const answer = new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no response to ${command} (${String(transaction)}) within ${timeoutMs} ms`)), timeoutMs);
      this.pending.set(key, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    await this.client.publishAsync(`${this.root}/request/${command}`, payload, { qos: 1, ...publish });
    return answer;
  }

  async publish(topic: string, payload: string | Buffer): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
