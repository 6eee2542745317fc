// JS code-interpreter smoke flow against a real `bulkhead serve`: the npm
// `@e2b/code-interpreter` as shipped, on E2B's default template (no template named): runCode
// with stdout, a main result, state across calls, an error, a PNG, a context with its own cwd,
// env vars for one call, a timeout, kill. Needs E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY and
// the pinned package under $BULKHEAD_SDK_JS (scripts/ci/setup-30-sdk.sh). Prints one JSON
// line; exits non-zero on failure.
const path = require('path')
const assert = require('assert/strict')
const jsDir = process.env.BULKHEAD_SDK_JS || '/opt/bulkhead-sdk-js'
const { Sandbox } = require(path.join(jsDir, 'node_modules', '@e2b', 'code-interpreter'))

async function main() {
  const sbx = await Sandbox.create({ timeoutMs: 300_000, allowInternetAccess: false })
  const report = { sandboxId: sbx.sandboxId }
  try {
    const seen = []
    const e = await sbx.runCode("print('out')\nx = 6 * 7\nx", { onStdout: (m) => seen.push(m.line) })
    assert.equal(e.error, undefined)
    assert.deepEqual(e.logs.stdout, ['out\n'])
    assert.deepEqual(seen, ['out\n'])
    assert.equal(e.text, '42')
    assert.equal((await sbx.runCode('x + 1')).text, '43', 'state is kept between calls')

    const err = await sbx.runCode("raise ValueError('boom')")
    assert.equal(err.error.name, 'ValueError')
    assert.equal(err.error.value, 'boom')

    const fig = await sbx.runCode(
      'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()')
    assert.equal(fig.error, undefined)
    const png = fig.results.find((r) => r.png)
    assert.ok(png, 'a PNG result')
    assert.equal(Buffer.from(png.png, 'base64').subarray(1, 4).toString(), 'PNG')

    const ctx = await sbx.createCodeContext({ cwd: '/tmp' })
    assert.equal((await sbx.runCode('import os\nos.getcwd()', { context: ctx })).text, '/tmp')

    const value = "it's \"quoted\" $(id)\n"
    const env = await sbx.runCode(
      "import base64, os\nprint(base64.b64encode(os.environ['V'].encode()).decode())",
      { envs: { V: value } })
    assert.equal(env.logs.stdout.join(''), Buffer.from(value).toString('base64') + '\n')
    assert.equal((await sbx.runCode("import os\n'V' in os.environ")).text, 'False')

    let timedOut = false
    try {
      await sbx.runCode('while True:\n    pass', { timeoutMs: 2_000 })
    } catch (_) {
      timedOut = true
    }
    assert.equal(timedOut, true, 'a timeout ends the call')
    assert.equal((await sbx.runCode('x', { timeoutMs: 60_000 })).text, '42', 'and the next call works')
    report.ran = true
  } finally {
    report.killed = await sbx.kill()
  }
  console.log(JSON.stringify(report))
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e)
  process.exit(1)
})
