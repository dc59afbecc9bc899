import { SdNotifier } from '../../service/sd-notify.js';
import { childLogger, type PartContext } from './context.js';

/** systemd's notify socket (Type=notify): first, so `systemctl status` says what a long start is doing. */
export function sdNotifyPart(ctx: Pick<PartContext, 'logger' | 'env'>) {
  const notifier = new SdNotifier({ env: ctx.env, logger: childLogger(ctx, 'sd-notify'), pid: process.pid });
  return { name: 'sd-notify', start: () => notifier.start(), stop: () => notifier.stop(), notifier };
}
