// Drives a running envd with the official, unmodified e2b JS SDK. Invoked by
// tests/sdk_js.rs with ENVD_URL, ENVD_TOKEN, ENVD_HOME and SDK_JS_DIR set. The sandbox object
// is built directly (no control plane), with every envd request going to ENVD_URL.
const path = require('node:path')
const { Sandbox, CommandExitError, FileNotFoundError, TimeoutError } = require(
  path.join(process.env.SDK_JS_DIR, 'node_modules', 'e2b'),
)

const URL_ = process.env.ENVD_URL
const TOKEN = process.env.ENVD_TOKEN
const HOME = process.env.ENVD_HOME

function check(name, cond, detail = '') {
  if (!cond) throw new Error(`${name}: ${detail}`)
  console.log(`ok ${name}`)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function main() {
  const sbx = new Sandbox({
    sandboxId: 'sbxtest',
    envdVersion: '0.6.13',
    envdAccessToken: TOKEN,
    sandboxUrl: URL_,
    apiKey: 'k',
  })
  check('isRunning', await sbx.isRunning())

  let r = await sbx.commands.run('echo hi; echo $HOME; id -u')
  check('run', r.stdout === `hi\n${HOME}\n1000\n` && r.exitCode === 0, JSON.stringify(r))

  try {
    await sbx.commands.run('echo out; exit 3')
    check('non-zero exit throws', false)
  } catch (e) {
    check('non-zero exit throws', e instanceof CommandExitError && e.exitCode === 3, String(e))
  }

  r = await sbx.commands.run('id -u', { user: 'root', cwd: '/' })
  check('run as root', r.stdout === '0\n', JSON.stringify(r))

  const h = await sbx.commands.run('cat', { background: true, stdin: true })
  await sbx.commands.sendStdin(h.pid, 'piped\n')
  await sbx.commands.closeStdin(h.pid)
  r = await h.wait()
  check('stdin + closeStdin', r.stdout === 'piped\n', JSON.stringify(r))

  const bg = await sbx.commands.run('sleep 30', { background: true })
  check('list', (await sbx.commands.list()).some((p) => p.pid === bg.pid))
  check('kill', await sbx.commands.kill(bg.pid))
  check('kill unknown', (await sbx.commands.kill(999999)) === false)

  try {
    await sbx.commands.run('sleep 10', { timeoutMs: 1000 })
    check('timeout throws', false)
  } catch (e) {
    check('timeout throws', e instanceof TimeoutError, String(e))
  }

  const info = await sbx.files.write('js/a.txt', 'hello')
  check('write', info.path === `${HOME}/js/a.txt`, JSON.stringify(info))
  check('read', (await sbx.files.read('js/a.txt')) === 'hello')
  check('exists', (await sbx.files.exists('js/a.txt')) && !(await sbx.files.exists('nope')))
  const entries = await sbx.files.list('js')
  check('list', entries.length === 1 && entries[0].name === 'a.txt', JSON.stringify(entries))
  check('makeDir', (await sbx.files.makeDir('js/d')) === true)
  check('makeDir existing', (await sbx.files.makeDir('js/d')) === false)
  await sbx.files.rename('js/a.txt', 'js/d/b.txt')
  check('rename', await sbx.files.exists('js/d/b.txt'))
  try {
    await sbx.files.read('missing.txt')
    check('read missing throws', false)
  } catch (e) {
    check('read missing throws', e instanceof FileNotFoundError, String(e))
  }

  const events = []
  const w = await sbx.files.watchDir('js', (e) => events.push(e))
  await sbx.files.write('js/new.txt', 'n')
  for (let i = 0; i < 50 && !events.some((e) => e.name === 'new.txt'); i++) await sleep(100)
  await w.stop()
  check('watchDir', events.some((e) => e.name === 'new.txt'), JSON.stringify(events))

  const url = await sbx.downloadUrl('js/new.txt')
  const res = await fetch(url)
  check('signed download url', res.status === 200 && (await res.text()) === 'n')

  const chunks = []
  const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => chunks.push(Buffer.from(d)), envs: { PS1: '$ ' } })
  await sbx.pty.resize(pty.pid, { cols: 132, rows: 50 })
  await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; exit\n'))
  await pty.wait()
  const out = Buffer.concat(chunks).toString()
  check('pty', out.includes('50 132'), JSON.stringify(out))

  await sbx.files.remove('js')
  check('remove', !(await sbx.files.exists('js')))
  console.log('all SDK flows passed')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
