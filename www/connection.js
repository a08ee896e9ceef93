// The dashboard's link to the attendance service, told truthfully:
//
// - `connecting`   first attempt, nothing received yet;
// - `live`         the live socket delivered a snapshot and is open;
// - `reconnecting` the socket is down, retried with backoff (numbers frozen);
// - `polling`      the socket failed `maxFailures` times in a row, however it
//                  failed (refused, closed before or after opening, closed by
//                  the server with a reason): HTTP polling answers meanwhile;
// - `offline`      neither the socket nor polling reaches the service;
// - `expired`      the server closed the socket because the token expired
//                  (close code 4001): retrying with it is pointless.
//
// A socket only counts as working once it delivered a snapshot: an opened
// socket that closes before does not reset the failure counter. `since` is
// when the last current data arrived, so the page can say "offline since
// 10:02" and freeze its numbers there.

export class LiveLink {
  /**
   * @param {object} o
   * @param {() => string} o.socketUrl   the live socket's URL
   * @param {() => string[]} [o.protocols] subprotocols (the token travels there)
   * @param {() => Promise<void>} o.poll one HTTP refresh (throws when it fails)
   * @param {(msg: object) => void} o.onMessage every parsed socket message
   * @param {(state: string, link: LiveLink) => void} o.onState
   */
  constructor({ socketUrl, protocols = () => [], poll, onMessage, onState, pollMs = 15000, maxFailures = 3 }) {
    Object.assign(this, { socketUrl, protocols, poll, onMessage, onState, pollMs, maxFailures });
    this.state = 'connecting';
    this.ws = null;
    this.failures = 0;
    this.attempt = 0;
    this.retryTimer = null;
    this.pollTimer = null;
    /** Browser time (ms) of the last current data; null before any. */
    this.lastContact = null;
    /** Browser time (ms) since when the data is not current; null while it is. */
    this.since = null;
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && !this.ws && this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.connect();
      }
    });
  }

  /** True when the numbers shown are as of `since`, not now. */
  get stale() {
    return this.state === 'reconnecting' || this.state === 'offline' || this.state === 'expired';
  }

  set(state) {
    if (state === 'live' || state === 'polling') {
      this.since = null;
    } else if (this.since === null && (state === 'reconnecting' || state === 'offline' || state === 'expired')) {
      this.since = this.lastContact ?? Date.now();
    }
    const changed = state !== this.state;
    this.state = state;
    if (changed) this.onState(state, this);
  }

  start() {
    this.onState(this.state, this);
    this.connect();
  }

  connect() {
    this.retryTimer = null;
    let ws;
    try {
      ws = new WebSocket(this.socketUrl(), this.protocols());
    } catch {
      this.failed(false);
      return;
    }
    this.ws = ws;
    let delivered = false;
    let parts = null; // a large message arriving in attendance.part messages
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg && msg.type === 'attendance.part') {
        // A large message (a big class's snapshot) comes in parts 1..parts.
        if (msg.part === 1) parts = { id: msg.id, data: [] };
        if (!parts || parts.id !== msg.id || parts.data.length !== msg.part - 1) { parts = null; return; }
        parts.data.push(msg.data);
        if (msg.part < msg.parts) return;
        try { msg = JSON.parse(parts.data.join('')); } catch { msg = null; }
        parts = null;
        if (!msg) return;
      }
      if (msg && msg.type === 'attendance.snapshot') {
        delivered = true;
        this.failures = 0;
        this.attempt = 0;
        this.stopPolling();
      }
      if (delivered) {
        this.lastContact = Date.now();
        this.set('live');
      }
      this.onMessage(msg);
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.ws = null;
      if (event.code === 4001) { // the token expired: a fresh one is needed
        this.stopPolling();
        if (delivered) this.lastContact = Date.now();
        this.set('expired');
        return;
      }
      // A live socket kept the numbers current until this moment.
      if (delivered) this.lastContact = Date.now();
      this.failed(delivered);
    };
  }

  failed(delivered) {
    this.failures = delivered ? 1 : this.failures + 1;
    const base = Math.min(30000, 1000 * 2 ** Math.min(this.attempt, 5));
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), Math.min(30000, base * (0.8 + 0.4 * Math.random())));
    if (this.failures >= this.maxFailures) {
      this.startPolling();
    } else if (!this.pollTimer) {
      this.set('reconnecting');
    }
  }

  async pollOnce() {
    try {
      await this.poll();
      if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === 'live') return;
      this.lastContact = Date.now();
      this.set('polling');
    } catch {
      if (this.state !== 'live') this.set('offline');
    }
  }

  startPolling() {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => this.pollOnce(), this.pollMs);
    this.pollOnce();
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
