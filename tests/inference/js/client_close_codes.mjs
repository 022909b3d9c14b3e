// Drives static/js/src/client.js with a fake WebSocket and timers: which close codes make it reconnect,
// which make it stop, and which session id it offers next time. Prints one JSON line per scenario.
import { AnalysisClient } from '../../../static/js/src/client.js';

const sockets = [];
const timers = [];
class FakeWebSocket {
  static OPEN = 1;
  constructor(url) {
    this.url = new URL(url);
    this.readyState = 1;
    sockets.push(this);
  }
  send() {}
  close() {
    this.readyState = 3;
  }
}
globalThis.WebSocket = FakeWebSocket;
globalThis.setTimeout = (fn) => {
  timers.push(fn);
  return timers.length;
};
globalThis.clearTimeout = () => {};

function scenario(closeCodes, resumeFirst) {
  sockets.length = 0;
  timers.length = 0;
  const states = [];
  const video = { addEventListener() {}, removeEventListener() {} };
  const client = new AnalysisClient({ video, wsUrl: 'ws://example.test/ws/analysis/x/', onStatus: (s) => states.push(s.state) });
  client.start();
  if (resumeFirst) client.sessionId = '11111111-1111-1111-1111-111111111111';
  for (const code of closeCodes) {
    const ws = sockets[sockets.length - 1];
    ws.readyState = 3;
    ws.onclose({ code });
    while (timers.length) timers.shift()();
  }
  return {
    codes: closeCodes,
    connections: sockets.length,
    resumes: sockets.map((ws) => ws.url.searchParams.get('resume')),
    state: states[states.length - 1],
    sessionId: client.sessionId,
  };
}

const results = [
  scenario([1006], true),
  scenario([4404], true),
  scenario([4429], true),
  scenario([4503], false),
  scenario([4409, 4409], true),
];
console.log(JSON.stringify(results));
