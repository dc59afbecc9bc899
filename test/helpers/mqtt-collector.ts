import { connectAsync, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';

export interface Received {
  topic: string;
  payload: string;
  raw: Buffer;
  retain: boolean;
  json: unknown;
  /** MQTT v5 properties (content type, expiry), when the connection is v5. */
  properties: IPublishPacket['properties'];
}

/** A real MQTT subscriber that records everything it receives. */
export class MqttCollector {
  readonly messages: Received[] = [];
  private waiters: { pred: (m: Received[]) => boolean; resolve: () => void }[] = [];

  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const text = payload.toString();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      this.messages.push({ topic, payload: text, raw: payload, retain: packet.retain, json, properties: packet.properties });
      this.waiters = this.waiters.filter((w) => (w.pred(this.messages) ? (w.resolve(), false) : true));
    });
  }

  static async connect(url: string, topics: string[], opts: IClientOptions = {}): Promise<MqttCollector> {
    const client = await connectAsync(url, { reconnectPeriod: 200, clean: true, ...opts });
    const c = new MqttCollector(client);
    await client.subscribeAsync(topics, { qos: 1 });
    return c;
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Waits until `pred` holds for the messages received so far. */
  async waitFor(pred: (m: Received[]) => boolean, timeoutMs = 30_000, what = 'messages'): Promise<void> {
    if (pred(this.messages)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${this.messages.length}: ${this.messages.map((m) => m.topic).join(', ')}`)), timeoutMs);
      this.waiters.push({ pred, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
