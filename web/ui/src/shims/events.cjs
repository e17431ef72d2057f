// Stand-in for Node's "events", which vtk.js's XML writer (xmlbuilder2)
// requires; the viewer never writes XML, but the module is bundled.
class EventEmitter {
  constructor() { this._ev = new Map(); }
  on(name, fn) { (this._ev.get(name) || this._ev.set(name, []).get(name)).push(fn); return this; }
  addListener(name, fn) { return this.on(name, fn); }
  once(name, fn) { const w = (...a) => { this.off(name, w); fn.apply(this, a); }; return this.on(name, w); }
  off(name, fn) { const l = this._ev.get(name); if (l) { const i = l.indexOf(fn); if (i >= 0) l.splice(i, 1); } return this; }
  removeListener(name, fn) { return this.off(name, fn); }
  removeAllListeners(name) { if (name === undefined) this._ev.clear(); else this._ev.delete(name); return this; }
  emit(name, ...args) { const l = this._ev.get(name); if (!l || !l.length) return false; for (const fn of [...l]) fn.apply(this, args); return true; }
  listenerCount(name) { return (this._ev.get(name) || []).length; }
}
EventEmitter.EventEmitter = EventEmitter;
module.exports = EventEmitter;
