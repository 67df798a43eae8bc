// The Chromium the browser tests drive: Debian's /usr/bin/chromium (or CHROMIUM_PATH) with
// flags that keep a headless run quiet and offline.
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
