import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { StallSweep } from '../../src/lib/stall-sweep.js'

/** A response and its socket as the sweep reads them: bytes waiting, bytes written, ended, destroyed. */
function answer (): { res: ServerResponse, socket: Socket, state: { waiting: number, written: number, ended: boolean, destroyed: boolean }, close: () => void } {
  const state = { waiting: 0, written: 0, ended: false, destroyed: false }
  const res = new EventEmitter() as unknown as ServerResponse & EventEmitter
  Object.defineProperty(res, 'writableEnded', { get: () => state.ended })
  const socket = { get writableLength () { return state.waiting }, get bytesWritten () { return state.written }, get destroyed () { return state.destroyed } } as unknown as Socket
  return { res, socket, state, close: () => { res.emit('close') } }
}

test('bytes that wait for the client without moving are a stall, told once; the answer is then no longer watched', async () => {
  const sweep = new StallSweep(80)
  const a = answer()
  let stalls = 0
  sweep.watch(a.res, a.socket, () => { stalls++ })
  a.state.written = 5000
  a.state.waiting = 3000
  await sleep(200)
  assert.equal(stalls, 1)
  assert.equal(sweep.size, 0)
  await sleep(60)
  assert.equal(stalls, 1)
  sweep.close()
})

test('bytes still moving, or nothing waiting (a quiet upstream), are not a stall', async () => {
  const sweep = new StallSweep(80)
  const moving = answer()
  const quiet = answer()
  let stalls = 0
  sweep.watch(moving.res, moving.socket, () => { stalls++ })
  sweep.watch(quiet.res, quiet.socket, () => { stalls++ })
  moving.state.waiting = 1000
  // the client reads a little every 30 ms: what reached it grows while more waits
  const reader = setInterval(() => { moving.state.written += 100 }, 30)
  await sleep(300)
  clearInterval(reader)
  assert.equal(stalls, 0)
  assert.equal(sweep.size, 2)
  sweep.close()
})

test('an answer that closed or whose end was written is dropped: no stall, nothing held', async () => {
  const sweep = new StallSweep(40)
  const closed = answer()
  const ended = answer()
  let stalls = 0
  sweep.watch(closed.res, closed.socket, () => { stalls++ })
  sweep.watch(ended.res, ended.socket, () => { stalls++ })
  closed.close()
  assert.equal(sweep.size, 1, 'a closed response leaves the sweep at once')
  ended.state.waiting = 10
  ended.state.written = 10
  ended.state.ended = true
  await sleep(120)
  assert.equal(stalls, 0)
  assert.equal(sweep.size, 0)
  sweep.close()
})

test('answers leaving in any order (closed, ended, stalled) leave the others watched, each stall told once', async () => {
  const sweep = new StallSweep(60)
  const answers = Array.from({ length: 8 }, () => answer())
  const stalls = answers.map(() => 0)
  answers.forEach((a, i) => { sweep.watch(a.res, a.socket, () => { stalls[i]++ }) })
  // closed: the first, a middle one and the last; ended: another middle one
  for (const i of [0, 3, 7]) answers[i].close()
  answers[5].state.ended = true
  assert.equal(sweep.size, 5, 'three closed answers left at once')
  answers[0].close()
  assert.equal(sweep.size, 5, 'a second close of the same answer changes nothing')
  // two of the rest stall: bytes wait and never move
  for (const i of [1, 6]) { answers[i].state.written = 10; answers[i].state.waiting = 10 }
  await sleep(220)
  assert.deepEqual(stalls, [0, 1, 0, 0, 0, 0, 1, 0])
  assert.equal(sweep.size, 2, 'the two answers still moving nothing and waiting for nothing stay watched')
  answers[2].close()
  answers[4].close()
  assert.equal(sweep.size, 0)
  sweep.close()
})

test('a stall handler that makes other answers leave at once does not upset the sweep', async () => {
  const sweep = new StallSweep(40)
  const answers = Array.from({ length: 4 }, () => answer())
  let stalls = 0
  // the last one watched is looked at first; its handler closes two others synchronously
  answers.forEach((a, i) => {
    sweep.watch(a.res, a.socket, () => {
      stalls++
      if (i === 3) { answers[0].close(); answers[1].close() }
    })
  })
  answers[3].state.written = 10
  answers[3].state.waiting = 10
  await sleep(150)
  assert.equal(stalls, 1)
  assert.equal(sweep.size, 1, 'only the answer that neither stalled nor closed is still watched')
  answers[2].close()
  assert.equal(sweep.size, 0)
  sweep.close()
})
