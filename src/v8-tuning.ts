/**
 * V8 settings for the gateway process, applied when this module is evaluated: the entry point
 * imports it first, before any other module has allocated anything.
 *
 * Allocation-site pretenuring is off. V8 counts, per allocating code site, how many of its
 * objects survive a young-generation collection, and once nearly all of a site's objects do, it
 * allocates that site's objects directly in the old generation from then on. While the process
 * starts and compiles, every request is slow and its objects do survive, so a per-request site
 * can pass that test; the decision then stays. Every later request's objects of that site are
 * born old and die there, and everything they point to (the rest of the request: its buffers,
 * headers, closures) is kept through every young collection until the next full one. A proxy
 * builds its long-lived data once, at start-up; what it allocates afterwards dies with its
 * request. Measured in docs/performance.md ("Objects born old").
 */
import { setFlagsFromString } from 'node:v8'

setFlagsFromString('--no-allocation-site-pretenuring')
