// JS SDK smoke flow against a real `bulkhead serve`: create, commands.run, files write/read,
// kill. Needs E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY and the pinned npm `e2b` under
// $BULKHEAD_SDK_JS (scripts/ci/setup-30-sdk.sh). Prints one JSON line; exits non-zero on failure.
const path = require('path')
const assert = require('assert/strict')
const jsDir = process.env.BULKHEAD_SDK_JS || '/opt/bulkhead-sdk-js'
const { Sandbox, CommandExitError } = require(path.join(jsDir, 'node_modules', 'e2b'))

async function main() {
  const tag = `js-${process.pid}-${Date.now()}`
  // e2b 2.2 sends allowInternetAccess: true unless told otherwise (docs/COMPATIBILITY.md).
  const sbx = await Sandbox.create('base', {
    timeoutMs: 120_000, envs: { FROM_JS: 'yes' }, metadata: { suite: tag, odd: 'a b/c&d=e' },
    allowInternetAccess: false,
  })
  const report = { sandboxId: sbx.sandboxId }
  try {
    // JS encodes the metadata filter differently from Python (spec 2.4).
    const listed = await Sandbox.list({ query: { metadata: { suite: tag, odd: 'a b/c&d=e' } } }).nextItems()
    assert.deepEqual(listed.map((s) => s.sandboxId), [sbx.sandboxId])
    const r = await sbx.commands.run('echo "$FROM_JS"; whoami')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'yes\nuser\n')
    await assert.rejects(sbx.commands.run('exit 4'), (e) => e instanceof CommandExitError && e.exitCode === 4)
    await sbx.files.write('/home/user/js.txt', 'from node ✓')
    assert.equal(await sbx.files.read('/home/user/js.txt'), 'from node ✓')
    const bytes = new Uint8Array([0, 1, 2, 255])
    await sbx.files.write('/home/user/js.bin', bytes.buffer)
    assert.deepEqual(new Uint8Array(await sbx.files.read('/home/user/js.bin', { format: 'bytes' })), bytes)
    assert.equal(await sbx.files.exists('/home/user/js.txt'), true)
    assert.equal(await sbx.isRunning(), true)
  } finally {
    // The instance kill of e2b 2.2 returns nothing; later releases return whether it killed.
    const killed = await sbx.kill()
    report.killed = killed === undefined ? true : killed
    report.killedAgain = await Sandbox.kill(sbx.sandboxId)
  }
  assert.equal(report.killed, true)
  assert.equal(report.killedAgain, false)
  assert.equal(await sbx.isRunning(), false)
  console.log(JSON.stringify(report))
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e)
  process.exit(1)
})
