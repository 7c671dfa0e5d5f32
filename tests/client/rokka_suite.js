'use strict'
/**
 * Drives a running cropstack server with the official rokka.js client (npm `rokka`, 4.0.0).
 *
 * Usage: node rokka_suite.js <server base URL>
 *   env ROKKA_ORG      organization the suite signs up with (default "rokka-js-tests")
 *   env ROKKA_API_KEY  use this key (and ROKKA_ORG as an existing org) instead of signing up
 *   env ROKKA_RENDER_DOMAIN  the server's --render-domain (default "render.test")
 *
 * Every step calls client methods and asserts on what came back: status codes, the
 * fields the client reads, the shapes of the recorded rokka fixtures. The JSON report
 * `{"ok": bool, "steps": [{"name", "methods", "ok", "error"?}]}` goes to stdout; progress
 * to stderr. Exit status 1 when any step failed, 2 on a usage error.
 */

const assert = require('node:assert/strict')
const http = require('node:http')
const zlib = require('node:zlib')
const crypto = require('node:crypto')
const rokkaModule = require('rokka')

// The CommonJS build exports {Rokka, default}: `default` is the documented factory.
const createClient = rokkaModule.default

const BASE = (process.argv[2] || process.env.CROPSTACK_URL || '').replace(/\/+$/, '')
if (!/^https?:\/\//.test(BASE)) {
  process.stderr.write('usage: node rokka_suite.js http://127.0.0.1:PORT\n')
  process.exit(2)
}
const ORG = process.env.ROKKA_ORG || 'rokka-js-tests'
const ORG2 = `${ORG}-copy`
const RENDER_HOST = `${BASE}/{organization}`
// The server's --render-domain, for {organization}.domain render hosts (getUrlFromUrl).
const RENDER_DOMAIN = process.env.ROKKA_RENDER_DOMAIN || 'render.test'

const steps = []
let remoteServer = null // closed at the end so the event loop can finish

/** Run one named step covering `methods`; record pass/fail, never throw. */
async function step(name, methods, fn) {
  const started = Date.now()
  try {
    await fn()
    steps.push({ name, methods, ok: true, ms: Date.now() - started })
    process.stderr.write(`ok    ${name}\n`)
  } catch (err) {
    const error = describe(err)
    steps.push({ name, methods, ok: false, error, ms: Date.now() - started })
    process.stderr.write(`FAIL  ${name}: ${error}\n`)
  }
}

/** A readable one-liner for an assertion error or a rokka.js error response. */
function describe(err) {
  if (err && typeof err.statusCode === 'number') {
    return `unexpected HTTP ${err.statusCode}: ${JSON.stringify(err.body)}`.slice(0, 600)
  }
  if (err instanceof Error) return `${err.message}`.slice(0, 600)
  return JSON.stringify(err).slice(0, 600)
}

function client(apiKey) {
  return createClient({
    apiKey,
    apiHost: BASE,
    renderHost: RENDER_HOST,
    apiVersion: 1,
    transport: { retries: 0, requestTimeout: 20000 },
  })
}

/** rokka.js parses a body only when Content-Type is exactly application/json. */
function assertJson(res, status) {
  assert.equal(res.statusCode, status, `status ${res.statusCode}, expected ${status}`)
  assert.equal(res.response.headers.get('content-type'), 'application/json')
  assert.equal(typeof res.body, 'object', 'body was not parsed as JSON by the client')
  assert.ok(res.body !== null)
  return res.body
}

/** A 204 answer: the client hands back an empty text body. */
function assertNoContent(res) {
  assert.equal(res.statusCode, 204)
  assert.equal(res.body, '')
}

/** Await a call that must fail with `status` and the error shape; the thrown response. */
async function expectError(promise, status) {
  let thrown = null
  try {
    await promise
  } catch (err) {
    thrown = err
  }
  assert.ok(thrown, `expected HTTP ${status}, the call succeeded`)
  assert.equal(thrown.statusCode, status, describe(thrown))
  assert.equal(thrown.response.headers.get('content-type'), 'application/json')
  assert.equal(thrown.body.error.code, status)
  assert.equal(typeof thrown.body.error.message, 'string')
  return thrown
}

const SOURCE_IMAGE_FIELDS = [
  'hash', 'short_hash', 'binary_hash', 'created', 'name', 'mimetype', 'format', 'size',
  'width', 'height', 'organization', 'link', 'user_metadata', 'dynamic_metadata',
  'static_metadata', 'opaque', 'protected', 'locked',
]

/** The source image object as rokka.js's Sourceimage type and the PHP client read it. */
function assertSourceImage(image, expected = {}) {
  for (const field of SOURCE_IMAGE_FIELDS) assert.ok(field in image, `missing ${field}`)
  assert.match(image.hash, /^[0-9a-f]{40}$/)
  assert.ok(image.hash.startsWith(image.short_hash) && image.short_hash.length >= 6)
  assert.match(image.binary_hash, /^[0-9a-f]{40}$/)
  assert.equal(image.link, `/sourceimages/${image.organization}/${image.hash}`)
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(image[key], value, `field ${key}`)
  }
}

// -- images made here, so the suite needs no fixture files -----------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(buf) {
  let c = 0xffffffff
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** An RGB PNG of width × height with a gradient seeded by `seed` (distinct bytes). */
function makePng(width, height, seed) {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header.set([8, 2, 0, 0, 0], 8) // 8-bit, truecolour, deflate, no filter, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height)
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1)
    for (let x = 0; x < width; x++) {
      rows[row + 1 + x * 3] = (x + seed) & 0xff
      rows[row + 2 + x * 3] = (y * 2 + seed) & 0xff
      rows[row + 3 + x * 3] = (seed * 37) & 0xff
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(rows)),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

/** {format, width, height} from PNG or JPEG header bytes; throws for anything else. */
function imageSize(buf) {
  if (buf.length > 24 && buf.readUInt32BE(0) === 0x89504e47) {
    return { format: 'png', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }
  }
  if (buf.length > 4 && buf[0] === 0xff && buf[1] === 0xd8) {
    let i = 2
    while (i + 9 < buf.length) {
      if (buf[i] !== 0xff) throw new Error(`JPEG marker expected at ${i}`)
      const marker = buf[i + 1]
      if (marker === 0xff) {
        i += 1 // fill byte
        continue
      }
      const length = buf.readUInt16BE(i + 2)
      // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return { format: 'jpg', height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) }
      }
      i += 2 + length
    }
    throw new Error('JPEG without a frame header')
  }
  throw new Error(`not a PNG or JPEG (first bytes ${buf.subarray(0, 8).toString('hex')})`)
}

/** GET a URL (render host); {status, contentType, body: Buffer}. */
async function fetchBytes(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(20000) })
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    body: Buffer.from(await res.arrayBuffer()),
  }
}

/** GET a render-host URL by connecting to 127.0.0.1 with its Host header, so
 *  {organization}.RENDER_DOMAIN hosts need no DNS. {status, contentType, body}. */
function fetchViaLoopback(url) {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port: new URL(BASE).port, // the render host name is virtual: same server
        path: target.pathname + target.search,
        headers: { Host: target.host },
        timeout: 20000,
      },
      res => {
        const chunks = []
        res.on('data', chunk => chunks.push(chunk))
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks),
          }),
        )
      },
    )
    req.on('timeout', () => req.destroy(new Error(`timeout fetching ${url}`)))
    req.on('error', reject)
  })
}

/** A tiny HTTP server on 127.0.0.1 serving `files` ({path: Buffer}) as image/png. */
function serveFiles(files) {
  const server = http.createServer((req, res) => {
    const body = files[req.url]
    if (!body) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': body.length })
    res.end(body)
  })
  return new Promise(resolve => {
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

function sha1(buf) {
  return crypto.createHash('sha1').update(buf).digest('hex')
}

// -- the suite -------------------------------------------------------------------------

async function main() {
  const anonymous = client(undefined)
  const png = makePng(200, 100, 1)
  const remotePng = makePng(120, 80, 2)
  const protectedPng = makePng(90, 60, 3)
  const remote = await serveFiles({ '/remote.png': remotePng })
  remoteServer = remote
  const remoteUrl = `http://127.0.0.1:${remote.address().port}/remote.png`

  let rokka = process.env.ROKKA_API_KEY ? client(process.env.ROKKA_API_KEY) : null
  let userId = null
  let signingKey = null
  const s = {} // state shared between steps: hashes, etc.

  await step('operations.list', ['operations.list'], async () => {
    const body = assertJson(await anonymous.operations.list(), 200)
    assert.equal(typeof body.resize.properties.width, 'object')
    assert.ok(Array.isArray(body.resize.required) || body.resize.required === undefined)
    assert.ok('crop' in body && 'noop' in body)
  })

  await step('stackoptions.get', ['stackoptions.get'], async () => {
    const body = assertJson(await anonymous.stackoptions.get(), 200)
    assert.equal(body.properties['jpg.quality'].type, 'integer')
    assert.equal(body.properties['jpg.quality'].default, 80)
  })

  await step('users.create', ['users.create'], async () => {
    if (rokka) return // an existing key was given
    const body = assertJson(await anonymous.users.create('suite@example.org', ORG), 200)
    assert.deepEqual(Object.keys(body).sort(), ['api_key', 'email', 'id'])
    assert.equal(body.email, 'suite@example.org')
    rokka = client(body.api_key)
  })
  if (!rokka) return finish(remote)

  await step('users.getId', ['users.getId', 'user.getId'], async () => {
    userId = await rokka.users.getId()
    assert.match(userId, /^[0-9a-f-]{36}$/)
    assert.equal(await rokka.user.getId(), userId)
  })

  await step('organizations.get', ['organizations.get'], async () => {
    const body = assertJson(await rokka.organizations.get(ORG), 200)
    for (const field of ['id', 'display_name', 'name', 'billing_email', 'created']) {
      assert.ok(field in body, `missing ${field}`)
    }
    assert.equal(body.name, ORG)
    assert.ok(Array.isArray(body.signing_keys) && body.signing_keys.length >= 1)
    assert.equal(typeof body.signing_keys[0].key, 'string')
    signingKey = body.signing_keys[0].key
  })

  await step('organizations.create', ['organizations.create'], async () => {
    const body = assertJson(
      await rokka.organizations.create(ORG2, 'billing@example.org', 'Organization Inc.'),
      200,
    )
    assert.equal(body.name, ORG2)
    assert.equal(body.display_name, 'Organization Inc.')
    assert.equal(body.billing_email, 'billing@example.org')
    assert.equal(body.master_organization, ORG2)
    await expectError(rokka.organizations.create(ORG2, 'b@example.org', 'Again'), 409)
  })

  await step('memberships.create', ['memberships.create', 'memberships.get'], async () => {
    const other = assertJson(await anonymous.users.create('member@example.org'), 200)
    const roles = [rokka.memberships.ROLES.UPLOAD, rokka.memberships.ROLES.WRITE]
    const created = assertJson(await rokka.memberships.create(ORG, other.id, roles), 201)
    assert.equal(created.user_id, other.id)
    assert.deepEqual(created.roles, ['upload', 'write'])
    assert.equal(created.active, true)
    assert.equal(typeof created.organization_id, 'string')
    const updated = assertJson(
      await rokka.memberships.create(ORG, other.id, [rokka.memberships.ROLES.READ]),
      200,
    )
    assert.deepEqual(updated.roles, ['read'])
    const got = assertJson(await rokka.memberships.get(ORG, other.id), 200)
    assert.deepEqual(got.roles, ['read'])
    s.memberId = other.id
  })

  await step('memberships.list', ['memberships.list'], async () => {
    const body = assertJson(await rokka.memberships.list(ORG), 200)
    assert.equal(body.total, 2)
    assert.equal(body.items.length, 2)
    const mine = body.items.find(m => m.user_id === userId)
    assert.deepEqual(mine.roles, ['admin'])
    assert.ok(body.items.some(m => m.user_id === s.memberId))
  })

  await step('sourceimages.create (file, user and dynamic metadata)', ['sourceimages.create'], async () => {
    const metadata = {
      meta_user: { foo: 'bar', 'int:id': 42 },
      meta_dynamic: { subject_area: { x: 10, y: 10, width: 20, height: 20 } },
    }
    const res = await rokka.sourceimages.create(ORG, 'gradient.png', png, metadata, {
      optimize_source: true,
    })
    const body = assertJson(res, 200)
    assert.equal(body.total, 1)
    assert.equal(body.items.length, 1)
    const image = body.items[0]
    assertSourceImage(image, {
      organization: ORG,
      name: 'gradient.png',
      format: 'png',
      mimetype: 'image/png',
      width: 200,
      height: 100,
      size: png.length,
      binary_hash: sha1(png),
      protected: false,
      locked: false,
    })
    assert.deepEqual(image.user_metadata, { foo: 'bar', 'int:id': 42 })
    assert.deepEqual(image.dynamic_metadata.subject_area, { x: 10, y: 10, width: 20, height: 20 })
    s.withMeta = image
    // The same bytes without dynamic metadata: rokka's identity sha1(binary_hash + "a:0:{}").
    const plain = assertJson(await rokka.sourceimages.create(ORG, 'plain.png', png), 200).items[0]
    assert.equal(plain.hash, sha1(Buffer.from(sha1(png) + 'a:0:{}')))
    assert.notEqual(plain.hash, image.hash)
    s.image = plain
  })

  await step('sourceimages.createByUrl', ['sourceimages.createByUrl'], async () => {
    const res = await rokka.sourceimages.createByUrl(ORG, remoteUrl, {
      meta_user: { source: 'remote' },
      meta_dynamic: { crop_area: { x: 0, y: 0, width: 60, height: 40 } },
    })
    const image = assertJson(res, 200).items[0]
    assertSourceImage(image, { width: 120, height: 80, format: 'png', binary_hash: sha1(remotePng) })
    assert.deepEqual(image.user_metadata, { source: 'remote' })
    assert.deepEqual(image.dynamic_metadata.crop_area, { x: 0, y: 0, width: 60, height: 40 })
    s.remote = image
  })

  await step('sourceimages.get', ['sourceimages.get'], async () => {
    const image = assertJson(await rokka.sourceimages.get(ORG, s.image.hash), 200)
    assertSourceImage(image, { hash: s.image.hash, name: 'plain.png', width: 200 })
    const short = assertJson(await rokka.sourceimages.get(ORG, s.image.short_hash), 200)
    assert.equal(short.hash, s.image.hash)
    await expectError(rokka.sourceimages.get(ORG, '0000000000000000000000000000000000000000'), 404)
  })

  await step('sourceimages.list (list shape, exact search, limit, offset)', ['sourceimages.list'], async () => {
    const all = assertJson(await rokka.sourceimages.list(ORG), 200)
    assert.equal(all.total, 3)
    assert.equal(all.items.length, 3)
    assert.equal(typeof all.links, 'object')
    all.items.forEach(item => assertSourceImage(item))
    // The query as rokka.js builds it: sort joined by ",", search keys passed as they are.
    const res = await rokka.sourceimages.list(ORG, {
      limit: 10,
      offset: 0,
      sort: ['created desc', 'hash asc'],
      search: { 'user:str:foo': 'bar', 'user:int:id': '42' },
    })
    const body = assertJson(res, 200)
    assert.equal(body.total, 1)
    assert.deepEqual(body.items.map(i => i.hash), [s.withMeta.hash])
    assert.equal(typeof body.links, 'object')
    const paged = assertJson(await rokka.sourceimages.list(ORG, { limit: 1, offset: 1 }), 200)
    assert.equal(paged.items.length, 1)
    assert.equal(paged.total, 3)
    assert.equal(paged.items[0].hash, all.items[1].hash) // default sort: created desc
    assert.ok(paged.links.prev && paged.links.next, 'prev and next links')
  })

  // -- search through the client: a known set of images, expectations computed here ---
  // Every query below also filters on user:str:group=search, so the set is exactly these
  // images whatever else the organization holds.
  const GROUP = { 'user:str:group': 'search' }
  const searchSet = [
    { id: 1, colour: 'red', labels: ['lake', 'mountain'], w: 64, h: 40 },
    { id: 2, colour: 'green', labels: ['city'], w: 30, h: 30 },
    { id: 3, colour: 'red', labels: ['lake', 'city'], w: 90, h: 20 },
    { id: 4, colour: 'blue', labels: ['mountain'], w: 16, h: 50 },
    { id: 5, colour: 'reddish', labels: ['lake'], w: 48, h: 48 },
  ]
  /** The hashes of `images` ordered by `keys` ([value getter, descending]); like the
   *  server, images without a value come last and ties end with hash in the last key's
   *  direction. */
  const ordered = (images, keys) => {
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0)
    const lastDesc = keys[keys.length - 1][1]
    return [...images]
      .sort((a, b) => {
        for (const [get, desc] of keys) {
          const va = get(a)
          const vb = get(b)
          if (va === undefined || vb === undefined) {
            if (va !== vb) return va === undefined ? 1 : -1
            continue
          }
          const c = cmp(va, vb)
          if (c !== 0) return desc ? -c : c
        }
        return lastDesc ? -cmp(a.hash, b.hash) : cmp(a.hash, b.hash)
      })
      .map(i => i.hash)
  }
  const hashesOf = images => images.map(i => i.hash)
  const byId = image => image.id
  /** Facet values as the server answers them: [{value, count}], most frequent first. */
  const facetOf = (images, values) => {
    const counts = new Map()
    for (const image of images) {
      for (const value of new Set(values(image))) counts.set(value, (counts.get(value) || 0) + 1)
    }
    return [...counts]
      .map(([value, count]) => ({ value, count }))
      .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
  }
  /** list() with the group filter added; the parsed body. */
  const search = async (params = {}) =>
    assertJson(
      await rokka.sourceimages.list(ORG, { ...params, search: { ...GROUP, ...params.search } }),
      200,
    )

  await step('sourceimages.list (upload the search set with user metadata)', ['sourceimages.create', 'sourceimages.list'], async () => {
    for (const image of searchSet) {
      const bytes = makePng(image.w, image.h, 10 + image.id)
      const meta = {
        'int:id': image.id,
        'str:colour': image.colour,
        'array:labels': image.labels,
        group: 'search',
      }
      const res = await rokka.sourceimages.create(ORG, `search-${image.id}.png`, bytes, {
        meta_user: meta,
      })
      const created = assertJson(res, 200).items[0]
      assertSourceImage(created, { width: image.w, height: image.h, size: bytes.length })
      // str: is answered without its prefix.
      assert.deepEqual(created.user_metadata, {
        'int:id': image.id, colour: image.colour, 'array:labels': image.labels, group: 'search',
      })
      Object.assign(image, { hash: created.hash, size: created.size, name: created.name })
    }
    assert.equal(new Set(searchSet.map(i => i.size)).size, searchSet.length, 'distinct sizes')
    const body = await search({ limit: 100 })
    assert.equal(body.total, searchSet.length)
    assert.deepEqual(new Set(hashesOf(body.items)), new Set(hashesOf(searchSet)))
  })

  await step('sourceimages.list (search: exact, range, prefix, array, several filters)', ['sourceimages.list'], async () => {
    const expectHashes = async (filters, want, sort = 'user:int:id asc') => {
      const body = await search({ search: filters, sort })
      const wanted = ordered(searchSet.filter(want), [[byId, false]])
      assert.deepEqual(hashesOf(body.items), wanted, `search ${JSON.stringify(filters)}`)
      assert.equal(body.total, wanted.length, `total for ${JSON.stringify(filters)}`)
    }
    // exact string and integer
    await expectHashes({ 'user:str:colour': 'red' }, i => i.colour === 'red')
    await expectHashes({ 'user:int:id': '4' }, i => i.id === 4)
    // ranges: inclusive, half-open, open-ended; on user fields and on size
    await expectHashes({ 'user:int:id': '[2,4}' }, i => i.id >= 2 && i.id < 4)
    await expectHashes({ 'user:int:id': '{3,*]' }, i => i.id > 3)
    const sizes = searchSet.map(i => i.size).sort((a, b) => a - b)
    await expectHashes({ size: `[${sizes[1]},${sizes[3]}]` }, i => i.size >= sizes[1] && i.size <= sizes[3])
    await expectHashes({ 'user:str:colour': '[green,red]' }, i => i.colour >= 'green' && i.colour <= 'red')
    // prefix: trailing * on a user string and on the name
    await expectHashes({ 'user:str:colour': 'red*' }, i => i.colour.startsWith('red'))
    await expectHashes({ name: 'search-*' }, () => true)
    await expectHashes({ 'user:str:colour': '"red*"' }, () => false) // quoted: a literal star
    // arrays match when any element does; several filters combine with AND
    await expectHashes({ 'user:array:labels': 'lake' }, i => i.labels.includes('lake'))
    await expectHashes({ 'user:array:labels': 'mount*' }, i => i.labels.includes('mountain'))
    await expectHashes(
      { 'user:array:labels': 'lake', 'user:str:colour': 'red' },
      i => i.labels.includes('lake') && i.colour === 'red',
    )
    await expectHashes({ 'user:int:id': '[2,3]', width: '[50,}' }, i => i.id >= 2 && i.id <= 3 && i.w >= 50)
    // A value not fitting the type is a 400 in the error shape.
    await expectError(rokka.sourceimages.list(ORG, { search: { 'user:int:id': '1.5' } }), 400)
  })

  await step('sourceimages.list (sort asc/desc by user fields and size)', ['sourceimages.list'], async () => {
    const cases = [
      ['user:int:id asc', [[byId, false]]],
      ['user:int:id desc', [[byId, true]]],
      [['size asc'], [[i => i.size, false]]],
      [['size desc'], [[i => i.size, true]]],
      // two keys, as an array the client joins with ","
      [['user:str:colour asc', 'user:int:id desc'], [[i => i.colour, false], [byId, true]]],
      [['user:str:colour desc', 'size'], [[i => i.colour, true], [i => i.size, false]]],
    ]
    for (const [sort, keys] of cases) {
      const body = await search({ sort })
      assert.deepEqual(hashesOf(body.items), ordered(searchSet, keys), `sort ${sort}`)
    }
    // Without the group filter: the other images (no int:id, or id 42) after the set.
    const body = assertJson(await rokka.sourceimages.list(ORG, { sort: 'user:int:id asc' }), 200)
    const hashes = hashesOf(body.items)
    assert.deepEqual(hashes.slice(0, searchSet.length), ordered(searchSet, [[byId, false]]))
    assert.equal(hashes[searchSet.length], s.withMeta.hash) // int:id 42
    assert.equal(body.total, hashes.length)
    await expectError(rokka.sourceimages.list(ORG, { sort: 'user:array:labels asc' }), 400)
  })

  await step('sourceimages.list (limit + offset pages, cursor from the answer)', ['sourceimages.list'], async () => {
    const sort = ['user:int:id desc']
    const want = ordered(searchSet, [[byId, true]])
    // Numeric offsets: every page, with total and links.
    const seen = []
    for (let offset = 0; offset < want.length; offset += 2) {
      const page = await search({ sort, limit: 2, offset })
      assert.equal(page.total, want.length)
      assert.deepEqual(hashesOf(page.items), want.slice(offset, offset + 2), `offset ${offset}`)
      assert.equal(Boolean(page.links.prev), offset > 0, `prev link at offset ${offset}`)
      assert.equal(Boolean(page.links.next), offset + 2 < want.length, `next link at offset ${offset}`)
      assert.equal(typeof page.cursor, 'string')
      seen.push(...hashesOf(page.items))
    }
    assert.deepEqual(seen, want)
    const past = await search({ sort, limit: 2, offset: want.length })
    assert.deepEqual(past.items, [])
    assert.equal(past.total, want.length)
    // limit=0: only the count.
    const count = await search({ limit: 0, search: { 'user:array:labels': 'city' } })
    assert.deepEqual(count.items, [])
    assert.equal(count.total, searchSet.filter(i => i.labels.includes('city')).length)
    // The cursor each answer carries, passed back as `offset`, continues after that page.
    const cursorPages = []
    let page = await search({ sort, limit: 2 })
    cursorPages.push(hashesOf(page.items))
    // The first page is offset paging (next link: offset=2); cursor pages link by cursor.
    assert.ok(page.links.next.href.endsWith('&offset=2'), page.links.next.href)
    for (let cursorPage = false; page.links.next; cursorPage = true) {
      if (cursorPage) {
        assert.ok(page.links.next.href.endsWith(`&offset=${page.cursor}`), page.links.next.href)
      }
      page = await search({ sort, limit: 2, offset: page.cursor })
      assert.equal(page.total, want.length)
      assert.equal(page.links.prev, undefined) // no prev for cursor pages
      cursorPages.push(hashesOf(page.items))
    }
    assert.deepEqual(cursorPages, [want.slice(0, 2), want.slice(2, 4), want.slice(4)])
    // A cursor belongs to its sort order.
    const first = await search({ sort, limit: 2 })
    await expectError(
      rokka.sourceimages.list(ORG, { sort: 'size asc', offset: first.cursor, search: GROUP }),
      400,
    )
  })

  await step('sourceimages.list (facets)', ['sourceimages.list'], async () => {
    const labels = i => i.labels
    const colour = i => [i.colour]
    // A comma-separated string (the client's type), among all matches, not just the page.
    const all = await search({ facets: 'user:array:labels,user:str:colour,format', limit: 1 })
    assert.equal(all.items.length, 1)
    assert.deepEqual(all.facets, {
      'user:array:labels': facetOf(searchSet, labels),
      'user:str:colour': facetOf(searchSet, colour),
      format: [{ value: 'png', count: searchSet.length }],
    })
    // An array (the client repeats the parameter), with a filter and limit=0.
    const reds = await search({
      facets: ['user:array:labels'],
      limit: 0,
      search: { 'user:str:colour': 'red*' },
    })
    const matching = searchSet.filter(i => i.colour.startsWith('red'))
    assert.equal(reds.total, matching.length)
    assert.deepEqual(reds.facets, { 'user:array:labels': facetOf(matching, labels) })
    await expectError(rokka.sourceimages.list(ORG, { facets: 'user:int:id' }), 400)
  })

  await step('sourceimages.getWithBinaryHash', ['sourceimages.getWithBinaryHash'], async () => {
    const body = assertJson(await rokka.sourceimages.getWithBinaryHash(ORG, sha1(png)), 200)
    assert.equal(body.total, 2)
    assert.deepEqual(body.items.map(i => i.hash).sort(), [s.image.hash, s.withMeta.hash].sort())
  })

  await step('sourceimages.download', ['sourceimages.download', 'sourceimages.downloadAsBuffer'], async () => {
    const res = await rokka.sourceimages.download(ORG, s.image.hash)
    assert.equal(res.statusCode, 200)
    assert.equal(res.response.headers.get('content-type'), 'image/png')
    assert.match(res.response.headers.get('content-disposition'), /filename="plain\.png"/)
    const buffered = await rokka.sourceimages.downloadAsBuffer(ORG, s.image.hash)
    assert.ok(Buffer.isBuffer(buffered.body))
    assert.ok(buffered.body.equals(png), 'downloaded bytes are the uploaded bytes')
  })

  await step('sourceimages.setSubjectArea (deletePrevious=false)', ['sourceimages.setSubjectArea'], async () => {
    const area = { x: 100, y: 20, width: 50, height: 50 }
    const res = await rokka.sourceimages.setSubjectArea(ORG, s.image.hash, area)
    const image = assertJson(res, 201)
    assertSourceImage(image, { binary_hash: s.image.binary_hash })
    assert.notEqual(image.hash, s.image.hash)
    assert.deepEqual(image.dynamic_metadata.subject_area, area)
    assert.equal(res.response.headers.get('location'), `/sourceimages/${ORG}/${image.hash}`)
    assertJson(await rokka.sourceimages.get(ORG, s.image.hash), 200) // previous kept
    s.subject1 = image
  })

  await step('sourceimages.setSubjectArea (deletePrevious=true)', ['sourceimages.setSubjectArea'], async () => {
    const area = { x: 120, y: 30, width: 40, height: 40 }
    const res = await rokka.sourceimages.setSubjectArea(ORG, s.subject1.hash, area, {
      deletePrevious: true,
    })
    const image = assertJson(res, 201)
    assert.deepEqual(image.dynamic_metadata.subject_area, area)
    await expectError(rokka.sourceimages.get(ORG, s.subject1.hash), 404) // previous deleted
    s.subject2 = image
  })

  await step('sourceimages.removeSubjectArea (deletePrevious=false)', ['sourceimages.removeSubjectArea'], async () => {
    const res = await rokka.sourceimages.removeSubjectArea(ORG, s.subject2.hash)
    const image = assertJson(res, 201)
    assert.equal(image.dynamic_metadata.subject_area, undefined)
    // Without dynamic metadata the image is the plain upload again.
    assert.equal(image.hash, s.image.hash)
    assertJson(await rokka.sourceimages.get(ORG, s.subject2.hash), 200)
  })

  await step('sourceimages.removeSubjectArea (deletePrevious=true)', ['sourceimages.removeSubjectArea'], async () => {
    const res = await rokka.sourceimages.removeSubjectArea(ORG, s.withMeta.hash, {
      deletePrevious: true,
    })
    const image = assertJson(res, 201)
    assert.equal(image.dynamic_metadata.subject_area, undefined)
    assert.equal(res.response.headers.get('location'), `/sourceimages/${ORG}/${image.hash}`)
    await expectError(rokka.sourceimages.get(ORG, s.withMeta.hash), 404)
  })

  await step('sourceimages.addDynamicMetaData', ['sourceimages.addDynamicMetaData'], async () => {
    const crop = { x: 0, y: 0, width: 100, height: 50 }
    const res = await rokka.sourceimages.addDynamicMetaData(ORG, s.image.hash, 'crop_area', crop)
    const image = assertJson(res, 201)
    assert.deepEqual(image.dynamic_metadata.crop_area, crop)
    assert.equal(res.response.headers.get('location'), `/sourceimages/${ORG}/${image.hash}`)
    const versioned = await rokka.sourceimages.addDynamicMetaData(
      ORG, image.hash, 'version', { text: 'v2' }, { deletePrevious: true },
    )
    const v2 = assertJson(versioned, 201)
    assert.deepEqual(v2.dynamic_metadata.version, { text: 'v2' })
    await expectError(rokka.sourceimages.get(ORG, image.hash), 404)
    s.dynamic = v2
  })

  await step('sourceimages.deleteDynamicMetaData (deletePrevious in the body)', ['sourceimages.deleteDynamicMetaData'], async () => {
    const res = await rokka.sourceimages.deleteDynamicMetaData(ORG, s.dynamic.hash, 'version', {
      deletePrevious: true,
    })
    const image = assertJson(res, 201)
    assert.equal(image.dynamic_metadata.version, undefined)
    assert.ok(image.dynamic_metadata.crop_area)
    // rokka.js sends deletePrevious in the DELETE body, not the query: it must still count.
    await expectError(rokka.sourceimages.get(ORG, s.dynamic.hash), 404)
    const kept = await rokka.sourceimages.deleteDynamicMetaData(ORG, image.hash, 'crop_area')
    assert.equal(assertJson(kept, 201).hash, s.image.hash)
    assertJson(await rokka.sourceimages.get(ORG, image.hash), 200)
  })

  await step('sourceimages.addDynamicMetaData (detection_face)', ['sourceimages.addDynamicMetaData', 'sourceimages.deleteDynamicMetaData'], async () => {
    // rokka's documented call: an empty object; the detector runs, this image has no face.
    const res = await rokka.sourceimages.addDynamicMetaData(ORG, s.image.hash, 'detection_face', {})
    const image = assertJson(res, 201)
    assert.deepEqual(image.dynamic_metadata.detection_face, { faces: [] })
    assert.equal(res.response.headers.get('location'), `/sourceimages/${ORG}/${image.hash}`)
    const removed = await rokka.sourceimages.deleteDynamicMetaData(
      ORG, image.hash, 'detection_face', { deletePrevious: true },
    )
    assert.equal(assertJson(removed, 201).hash, s.image.hash)
    await expectError(rokka.sourceimages.get(ORG, image.hash), 404)
  })

  await step('sourceimages.putName', ['sourceimages.putName'], async () => {
    assertNoContent(await rokka.sourceimages.putName(ORG, s.image.hash, 'renamed image.png'))
    const image = assertJson(await rokka.sourceimages.get(ORG, s.image.hash), 200)
    assert.equal(image.name, 'renamed image.png')
  })

  await step('sourceimages.setLocked', ['sourceimages.setLocked'], async () => {
    const locked = assertJson(await rokka.sourceimages.setLocked(ORG, s.image.hash, true), 200)
    assert.equal(locked.locked, true)
    assert.equal(locked.hash, s.image.hash)
    await expectError(rokka.sourceimages.delete(ORG, s.image.hash), 409)
    const unlocked = assertJson(await rokka.sourceimages.setLocked(ORG, s.image.hash, false), 200)
    assert.equal(unlocked.locked, false)
  })

  await step('sourceimages.meta.set/add/replace/get/delete', [
    'sourceimages.meta.set', 'sourceimages.meta.add', 'sourceimages.meta.replace',
    'sourceimages.meta.get', 'sourceimages.meta.delete',
  ], async () => {
    const hash = s.image.hash
    const read = async () => assertJson(await rokka.sourceimages.meta.get(ORG, hash), 200)
    // meta.set sends the bare string: no JSON quotes.
    assertNoContent(await rokka.sourceimages.meta.set(ORG, hash, 'somefield', 'some value'))
    assert.deepEqual(await read(), { somefield: 'some value' })
    assertNoContent(
      await rokka.sourceimages.meta.add(ORG, hash, {
        'int:some_number': 0, other: 'x', delete_this: null,
      }),
    )
    assert.deepEqual(await read(), { somefield: 'some value', 'int:some_number': 0, other: 'x' })
    assertNoContent(
      await rokka.sourceimages.meta.add(ORG, hash, { other: null }),
    )
    assert.deepEqual(await read(), { somefield: 'some value', 'int:some_number': 0 })
    assertNoContent(
      await rokka.sourceimages.meta.replace(ORG, hash, { 'int:another_number': 23 }),
    )
    assert.deepEqual(await read(), { 'int:another_number': 23 })
    assertNoContent(await rokka.sourceimages.meta.set(ORG, hash, 'b', 'y'))
    assertNoContent(await rokka.sourceimages.meta.delete(ORG, hash, 'b'))
    assert.deepEqual(await read(), { 'int:another_number': 23 })
    assertNoContent(await rokka.sourceimages.meta.delete(ORG, hash))
    assert.deepEqual(await read(), {})
  })

  await step('sourceimages.copy (overwrite and not)', ['sourceimages.copy'], async () => {
    const created = await rokka.sourceimages.copy(ORG, s.image.hash, ORG2)
    assertJson(created, 201)
    assert.deepEqual(created.body, {})
    const copy = assertJson(await rokka.sourceimages.get(ORG2, s.image.hash), 200)
    assert.equal(copy.organization, ORG2)
    assert.equal(copy.binary_hash, s.image.binary_hash)
    const refused = await expectError(rokka.sourceimages.copy(ORG, s.image.hash, ORG2, false), 412)
    assert.ok(refused.body.error.message)
    const overwritten = await rokka.sourceimages.copy(ORG, s.image.hash, ORG2, true)
    assertNoContent(overwritten)
  })

  await step('sourceimages.delete + restore', ['sourceimages.delete', 'sourceimages.restore'], async () => {
    assertNoContent(await rokka.sourceimages.delete(ORG, s.remote.hash))
    await expectError(rokka.sourceimages.get(ORG, s.remote.hash), 404)
    const deleted = assertJson(
      await rokka.sourceimages.get(ORG, s.remote.hash, { deleted: true }),
      200,
    )
    assert.equal(deleted.deleted, true)
    const listed = assertJson(await rokka.sourceimages.list(ORG, { deleted: true }), 200)
    assert.ok(listed.items.some(i => i.hash === s.remote.hash))
    const restored = assertJson(await rokka.sourceimages.restore(ORG, s.remote.hash), 200)
    assertSourceImage(restored, { hash: s.remote.hash, deleted: false })
    assertJson(await rokka.sourceimages.get(ORG, s.remote.hash), 200)
  })

  await step('sourceimages.deleteWithBinaryHash', ['sourceimages.deleteWithBinaryHash'], async () => {
    assertNoContent(await rokka.sourceimages.deleteWithBinaryHash(ORG2, s.image.binary_hash))
    const left = assertJson(await rokka.sourceimages.getWithBinaryHash(ORG2, s.image.binary_hash), 200)
    assert.equal(left.total, 0)
    await expectError(rokka.sourceimages.deleteWithBinaryHash(ORG2, s.image.binary_hash), 404)
  })

  const stackConfig = {
    operations: [rokka.operations.resize(100, 100)],
    options: { 'jpg.quality': 77 },
  }

  await step('stacks.create (and overwrite)', ['stacks.create'], async () => {
    const body = assertJson(await rokka.stacks.create(ORG, 'mystack', stackConfig), 201)
    assert.equal(body.name, 'mystack')
    assert.equal(body.organization, ORG)
    assert.equal(typeof body.created, 'string')
    assert.deepEqual(body.stack_operations, [
      { name: 'resize', options: { width: 100, height: 100 } },
    ])
    assert.deepEqual(body.stack_options, { 'jpg.quality': 77 })
    assert.deepEqual(body.stack_expressions, [])
    await expectError(rokka.stacks.create(ORG, 'mystack', stackConfig), 409)
    const again = { ...stackConfig, options: { 'jpg.quality': 76 } }
    const replaced = assertJson(
      await rokka.stacks.create(ORG, 'mystack', again, { overwrite: true }),
      200,
    )
    assert.deepEqual(replaced.stack_options, { 'jpg.quality': 76 })
    // The 0.26 signature: (org, name, operations, options, overwrite).
    const old = await rokka.stacks.create(
      ORG, 'mystack', [rokka.operations.resize(100, 100)], { 'jpg.quality': 77 }, true,
    )
    assert.deepEqual(assertJson(old, 200).stack_options, { 'jpg.quality': 77 })
  })

  await step('stacks.get', ['stacks.get'], async () => {
    const body = assertJson(await rokka.stacks.get(ORG, 'mystack'), 200)
    assert.equal(body.name, 'mystack')
    assert.equal(body.link, `/stacks/${ORG}/mystack`)
    assert.deepEqual(body.stack_options, { 'jpg.quality': 77 })
    await expectError(rokka.stacks.get(ORG, 'nostack'), 404)
  })

  await step('stacks.list', ['stacks.list'], async () => {
    assertJson(await rokka.stacks.create(ORG, 'otherstack', stackConfig), 201)
    const body = assertJson(await rokka.stacks.list(ORG), 200)
    assert.deepEqual(body.items.map(i => i.name).sort(), ['mystack', 'otherstack'])
    const limited = assertJson(await rokka.stacks.list(ORG, 1), 200)
    assert.equal(limited.items.length, 1)
  })

  await step('stacks.delete', ['stacks.delete'], async () => {
    assertNoContent(await rokka.stacks.delete(ORG, 'otherstack'))
    await expectError(rokka.stacks.get(ORG, 'otherstack'), 404)
    await expectError(rokka.stacks.delete(ORG, 'otherstack'), 404)
  })

  await step('render.getUrl (named stack, fetched)', ['render.getUrl'], async () => {
    const url = rokka.render.getUrl(ORG, s.image.hash, 'png', 'mystack')
    assert.equal(url, `${BASE}/${ORG}/mystack/${s.image.hash}.png`)
    const res = await fetchBytes(url)
    assert.equal(res.status, 200)
    assert.equal(res.contentType, 'image/png')
    assert.deepEqual(imageSize(res.body), { format: 'png', width: 100, height: 50 })
  })

  await step('render.getUrl (dynamic, slug, stack options)', ['render.getUrl'], async () => {
    const url = rokka.render.getUrl(
      ORG, s.image.short_hash, 'jpg', [rokka.operations.resize(50, 50)],
      { filename: 'seo-name', stackoptions: { 'jpg.quality': 60 } },
    )
    assert.ok(url.includes('/dynamic/resize-width-50-height-50/o-jpg.quality-60/'), url)
    const res = await fetchBytes(url)
    assert.equal(res.status, 200)
    assert.equal(res.contentType, 'image/jpeg')
    assert.deepEqual(imageSize(res.body), { format: 'jpg', width: 50, height: 25 })
  })

  await step('sourceimages.alias (create, get, render, repoint, invalidateCache, delete)', [
    'sourceimages.alias.create', 'sourceimages.alias.get', 'sourceimages.alias.invalidateCache',
    'sourceimages.alias.delete',
  ], async () => {
    const other = assertJson(
      await rokka.sourceimages.create(ORG, 'footer.png', makePng(64, 32, 4)), 200,
    ).items[0]
    const made = assertJson(
      await rokka.sourceimages.alias.create(ORG, 'mail_logo', { hash: s.image.hash }), 201,
    )
    assert.deepEqual(
      [made.organization, made.alias, made.hash], [ORG, 'mail_logo', s.image.hash],
    )
    const got = assertJson(await rokka.sourceimages.alias.get(ORG, 'mail_logo'), 200)
    assert.equal(got.hash, s.image.hash)
    assert.equal(typeof got.created, 'string')
    // rokka.js builds the render URL with the alias in place of the hash
    const url = rokka.render.getUrl(ORG, '-_mail_logo_-', 'png', 'dynamic/noop')
    assert.equal(url, `${BASE}/${ORG}/dynamic/noop/-_mail_logo_-.png`)
    assert.deepEqual(imageSize((await fetchBytes(url)).body), { format: 'png', width: 200, height: 100 })
    await expectError(rokka.sourceimages.alias.create(ORG, 'mail_logo', { hash: other.hash }), 409)
    const repointed = assertJson(await rokka.sourceimages.alias.create(
      ORG, 'mail_logo', { hash: other.short_hash }, { overwrite: true },
    ), 200)
    assert.equal(repointed.hash, other.hash)
    assert.deepEqual(imageSize((await fetchBytes(url)).body), { format: 'png', width: 64, height: 32 })
    const purged = assertJson(await rokka.sourceimages.alias.invalidateCache(ORG, 'mail_logo'), 200)
    assert.ok(Array.isArray(purged.items))
    assert.ok(purged.items.includes(`/${ORG}/dynamic/-_mail_logo_-.png`), JSON.stringify(purged))
    await expectError(rokka.sourceimages.alias.create(ORG, 'mail-logo', { hash: other.hash }), 400)
    assertNoContent(await rokka.sourceimages.alias.delete(ORG, 'mail_logo'))
    await expectError(rokka.sourceimages.alias.get(ORG, 'mail_logo'), 404)
    await expectError(rokka.sourceimages.alias.delete(ORG, 'mail_logo'), 404)
    const gone = await fetchBytes(url)
    assert.equal(gone.status, 404)
    assert.equal(JSON.parse(gone.body).error.code, 404)
  })

  await step('render.signUrl (protected image: 403 unsigned, 200 signed)', ['render.signUrl', 'sourceimages.create'], async () => {
    const upload = await rokka.sourceimages.create(ORG, 'secret.png', protectedPng, {
      options: { protected: true },
    })
    const image = assertJson(upload, 200).items[0]
    assertSourceImage(image, { protected: true, width: 90, height: 60 })
    s.protected = image
    const url = rokka.render.getUrl(ORG, image.hash, 'png', [rokka.operations.resize(45, 45)])
    const unsigned = await fetchBytes(url)
    assert.equal(unsigned.status, 403)
    assert.equal(unsigned.contentType, 'application/json')
    assert.equal(JSON.parse(unsigned.body).error.code, 403)
    const signed = rokka.render.signUrl(url, signingKey)
    assert.match(signed, /[?&]sig=[0-9a-f]{16}$/)
    const ok = await fetchBytes(signed)
    assert.equal(ok.status, 200, ok.body.toString())
    assert.deepEqual(imageSize(ok.body), { format: 'png', width: 45, height: 30 })
    // rokka.js drops the SEO slug before signing: the server must accept that.
    const slugged = rokka.render.getUrl(ORG, image.hash, 'png', 'dynamic/noop', {
      filename: 'my-secret',
    })
    assert.equal((await fetchBytes(rokka.render.signUrl(slugged, signingKey))).status, 200)
    // Tampering with the signed URL breaks it.
    assert.equal((await fetchBytes(signed.replace('width-45', 'width-46'))).status, 403)
  })

  await step('render.signUrl (until: valid, expired)', ['render.signUrl'], async () => {
    const url = rokka.render.getUrl(ORG, s.protected.hash, 'png', 'dynamic/noop')
    const future = new Date(Date.now() + 3600 * 1000)
    const valid = rokka.render.signUrl(url, signingKey, { until: future })
    assert.ok(new URL(valid).searchParams.get('sigopts').includes('until'))
    assert.equal((await fetchBytes(valid)).status, 200)
    const past = new Date(Date.now() - 3600 * 1000)
    const expired = rokka.render.signUrl(url, signingKey, { until: past, roundDateUpTo: 1 })
    const res = await fetchBytes(expired)
    assert.equal(res.status, 403)
    assert.match(JSON.parse(res.body).error.message, /expired/)
  })

  await step('utils.signUrl (server-side signing)', ['utils.signUrl'], async () => {
    const url = rokka.render.getUrl(ORG, s.protected.hash, 'png', 'dynamic/noop')
    const body = assertJson(await rokka.utils.signUrl(ORG, url), 200)
    assert.equal(body.original_url, url)
    assert.match(body.signed_url, /[?&]sig=[0-9a-f]{16}$/)
    assert.equal((await fetchBytes(body.signed_url)).status, 200)
    const limited = assertJson(await rokka.utils.signUrl(ORG, url, { roundDateUpTo: 600 }), 200)
    assert.equal(limited.original_url, url)
    assert.equal((await fetchBytes(limited.signed_url)).status, 200)
  })

  await step('sourceimages.setProtected', ['sourceimages.setProtected'], async () => {
    const res = await rokka.sourceimages.setProtected(ORG, s.protected.hash, false, {
      deletePrevious: true,
    })
    const image = assertJson(res, 201)
    assert.equal(image.protected, false)
    assert.notEqual(image.hash, s.protected.hash)
    assert.equal(res.response.headers.get('location'), `/sourceimages/${ORG}/${image.hash}`)
    await expectError(rokka.sourceimages.get(ORG, s.protected.hash), 404)
    const url = rokka.render.getUrl(ORG, image.hash, 'png', 'dynamic/noop')
    assert.equal((await fetchBytes(url)).status, 200)
  })

  await step('organizations.setOption (protect_dynamic_stack)', ['organizations.setOption', 'organizations.setOptions'], async () => {
    const option = rokka.organizations.OPTION_PROTECT_DYNAMIC_STACK
    const body = assertJson(await rokka.organizations.setOption(ORG, option, true), 200)
    assert.equal(body.options.protect_dynamic_stack, true)
    const url = rokka.render.getUrl(ORG, s.image.hash, 'png', [rokka.operations.resize(20, 20)])
    assert.equal((await fetchBytes(url)).status, 403)
    assert.equal((await fetchBytes(rokka.render.signUrl(url, signingKey))).status, 200)
    // Named stacks stay public.
    assert.equal((await fetchBytes(rokka.render.getUrl(ORG, s.image.hash, 'png', 'mystack'))).status, 200)
    const off = assertJson(await rokka.organizations.setOptions(ORG, { [option]: false }), 200)
    assert.equal(off.options.protect_dynamic_stack, false)
    assert.equal((await fetchBytes(url)).status, 200)
  })

  await step('render.getUrl (remote images: -path- and -full url-)', ['render.getUrl', 'render.getUrlComponents', 'organizations.setOptions'], async () => {
    const basepath = `http://127.0.0.1:${remote.address().port}/`
    const on = { remote_basepath: basepath, remote_fullurl_allow: true }
    assert.equal(assertJson(await rokka.organizations.setOptions(ORG, on), 200).options.remote_basepath, basepath)
    const byPath = rokka.render.getUrl(ORG, '-remote.png-', 'png', [rokka.operations.resize(60, 60)])
    assert.equal(rokka.render.getUrlComponents(new URL(byPath)).hash, '-remote.png-')
    const res = await fetchBytes(byPath)
    assert.equal(res.status, 200, res.body.toString())
    assert.deepEqual(imageSize(res.body), { format: 'png', width: 60, height: 40 })
    const full = rokka.render.getUrl(ORG, `-${remoteUrl}-`, 'png', 'dynamic/noop', { filename: 'seo' })
    const whole = await fetchBytes(full)
    assert.equal(whole.status, 200, whole.body.toString())
    assert.deepEqual(imageSize(whole.body), { format: 'png', width: 120, height: 80 })
    // Switched off again: the remote forms are not found.
    const off = { remote_basepath: null, remote_fullurl_allow: false }
    assertJson(await rokka.organizations.setOptions(ORG, off), 200)
    const gone = await fetchBytes(byPath)
    assert.equal(gone.status, 404)
    assert.equal(JSON.parse(gone.body).error.code, 404)
  })

  await step('memberships.createWithNewUser', ['memberships.createWithNewUser'], async () => {
    const roles = [rokka.memberships.ROLES.UPLOAD, rokka.memberships.ROLES.READ]
    const res = await rokka.memberships.createWithNewUser(ORG, roles, 'build bot')
    const body = assertJson(res, 201)
    assert.deepEqual(body.roles, ['upload', 'read'])
    assert.equal(typeof body.api_key, 'string')
    assert.equal(body.comment, 'build bot')
    const bot = client(body.api_key)
    assert.equal(await bot.users.getId(), body.user_id)
  })

  await step('user api keys', [
    'user.get', 'user.listApiKeys', 'user.addApiKey', 'user.getCurrentApiKey',
    'user.deleteApiKey',
  ], async () => {
    const me = assertJson(await rokka.user.get(), 200)
    assert.equal(me.user_id, userId)
    assert.equal(me.email, 'suite@example.org')
    const added = assertJson(await rokka.user.addApiKey('second key'), 200)
    assert.equal(added.comment, 'second key')
    assert.equal(typeof added.api_key, 'string')
    const listed = assertJson(await rokka.user.listApiKeys(), 200)
    assert.ok(listed.some(k => k.id === added.id) && listed.every(k => !('api_key' in k)))
    const second = client(added.api_key)
    const current = assertJson(await second.user.getCurrentApiKey(), 200)
    assert.equal(current.id, added.id)
    assertNoContent(await rokka.user.deleteApiKey(added.id))
    await expectError(second.user.get(), 403)
  })

  await step('JWT tokens (getNewToken, then the token alone)', [
    'user.getNewToken', 'user.getToken', 'user.isTokenExpiring', 'user.getTokenIsValidFor',
  ], async () => {
    const res = await rokka.user.getNewToken(null, { expires_in: 7200 })
    const body = assertJson(res, 200)
    assert.equal(body.payload.expt, 7200)
    assert.equal(body.payload.id, userId)
    assert.deepEqual(body.payload.ips, ['127.0.0.1'])
    // a client holding only the token, as a browser would (rokka's callbacks)
    let stored = body.token
    const tokenOnly = createClient({
      apiHost: BASE,
      renderHost: RENDER_HOST,
      apiVersion: 1,
      apiTokenGetCallback: () => stored,
      apiTokenSetCallback: token => { stored = token },
      transport: { retries: 0, requestTimeout: 20000 },
    })
    assert.equal(tokenOnly.user.getToken(), body.token)
    assert.equal(tokenOnly.user.isTokenExpiring(3600), false)
    assert.ok(tokenOnly.user.getTokenIsValidFor() > 7000)
    const me = assertJson(await tokenOnly.user.get(), 200)
    assert.equal(me.user_id, userId)
    const org = assertJson(await tokenOnly.organizations.get(ORG), 200)
    assert.equal(org.name, ORG)
    // an invalid token is a 401, and the client clears it
    stored = `${body.token.slice(0, -4)}AAAA`
    await expectError(tokenOnly.user.get(), 401)
    assert.equal(stored, '')
  })

  await step('stats and billing (the dashboard, with a token)', [
    'stats.get', 'billing.get', 'user.getNewToken',
  ], async () => {
    const issued = assertJson(await rokka.user.getNewToken(null, { expires_in: 600 }), 200)
    const dashboard = createClient({
      apiHost: BASE,
      renderHost: RENDER_HOST,
      apiVersion: 1,
      apiTokenGetCallback: () => issued.token,
      apiTokenSetCallback: () => {},
      transport: { retries: 0, requestTimeout: 20000 },
    })
    const today = new Date().toISOString().slice(0, 10)
    // The suite rendered images above; the server writes its counts every 0.5 s.
    let stats = null
    for (let tries = 0; tries < 100; tries++) {
      stats = assertJson(await dashboard.stats.get(ORG), 200)
      if (stats.bytes_downloaded.length > 0) break
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    for (const key of ['space_in_bytes', 'number_of_files', 'bytes_downloaded',
      'bytes_downloaded_external']) {
      assert.ok(Array.isArray(stats[key]), `stats.${key} is not a list`)
    }
    const [delivered] = stats.bytes_downloaded
    assert.equal(delivered.timestamp, `${today}T00:00:00+00:00`)
    assert.ok(delivered.value > 0, 'no bytes delivered today')
    assert.equal(stats.number_of_renders[0].timestamp, delivered.timestamp)
    assert.ok(stats.number_of_renders[0].value > 0)
    const [space] = stats.space_in_bytes // newest first, as rokka answers
    assert.deepEqual(Object.keys(space).sort(), ['timestamp', 'unit', 'value'])
    assert.equal(space.timestamp, `${today}T00:00:00+00:00`)
    assert.ok(space.value > 0 && stats.number_of_files[0].value > 0)
    const oneDay = assertJson(await dashboard.stats.get(ORG, today, today), 200)
    assert.equal(oneDay.space_in_bytes.length, 1)
    await expectError(dashboard.stats.get(ORG, 'yesterday', today), 400)
    // billing: this month, in the shape rokka's dashboard reads, without prices
    const month = today.slice(0, 7)
    const bill = assertJson(await dashboard.billing.get(ORG), 200)
    const overview = bill[ORG][month]
    assert.ok(overview, JSON.stringify(bill).slice(0, 200))
    assert.ok(overview.combined.traffic.total.units_consumed >= delivered.value)
    assert.ok(overview.combined.rendering_transactions.total.units_consumed > 0)
    assert.ok(ORG in overview.organizations)
    const first = `${month}-01`
    const same = assertJson(await dashboard.billing.get(ORG, first, first), 200)
    assert.deepEqual(Object.keys(same[ORG]), [month])
  })

  await step('cache invalidation and copyAll', [
    'sourceimages.invalidateCache', 'stacks.invalidateCache', 'sourceimages.copyAll',
  ], async () => {
    assertJson(await rokka.sourceimages.invalidateCache(ORG, s.image.hash), 200)
    assertJson(await rokka.stacks.invalidateCache(ORG, 'mystack'), 200)
    const res = await rokka.sourceimages.copyAll(ORG, [s.image.hash, 'abcdef0123'], ORG2)
    const body = assertJson(res, 200)
    assert.deepEqual(body.created, [s.image.hash])
    assert.deepEqual(body.notfound, ['abcdef0123'])
    const again = assertJson(await rokka.sourceimages.copyAll(ORG, [s.image.hash], ORG2, false), 200)
    assert.deepEqual(again.existing, [s.image.hash])
  })

  await step('render URL helpers', [
    'render.getUrlFromUrl', 'render.addStackVariables', 'render.getUrlComponents',
    'render.signUrlWithOptions',
  ], async () => {
    // getUrlFromUrl reads the organization from the host name, so it needs rokka's
    // {organization}.domain render hosts (the server runs with --render-domain), and a
    // renderHost without a port (the client compares host:port with a bare hostname).
    const hosted = createClient({ renderHost: `http://{organization}.${RENDER_DOMAIN}` })
    const source = hosted.render.getUrl(ORG, s.image.hash, 'png', 'mystack')
    assert.equal(source, `http://${ORG}.${RENDER_DOMAIN}/mystack/${s.image.hash}.png`)
    const moved = hosted.render.getUrlFromUrl(source, 'dynamic/resize-width-30-height-30', {
      format: 'jpg',
    })
    assert.equal(
      moved,
      `http://${ORG}.${RENDER_DOMAIN}/dynamic/resize-width-30-height-30/${s.image.hash}.jpg`,
    )
    const res = await fetchViaLoopback(moved)
    assert.equal(res.status, 200)
    assert.deepEqual(imageSize(res.body), { format: 'jpg', width: 30, height: 15 })
    const url = rokka.render.getUrl(ORG, s.image.hash, 'png', 'mystack')
    const parts = rokka.render.getUrlComponents(new URL(url))
    assert.equal(parts.hash, s.image.hash)
    const withVars = rokka.render.addStackVariables(url, { w: '40' })
    assert.equal((await fetchBytes(withVars)).status, 200)
    const signedUrl = rokka.render.signUrlWithOptions(url, signingKey, null)
    assert.equal((await fetchBytes(signedUrl)).status, 200)
  })

  await step('request (raw API call)', ['request'], async () => {
    const res = await rokka.request(`organizations/${ORG}/signing_keys`, 'POST')
    const body = assertJson(res, 201)
    assert.equal(body.signing_keys.length, 2)
    assert.equal(body.signing_keys[1].key, signingKey) // the previous key is kept
    const url = rokka.render.getUrl(ORG, s.image.hash, 'png', 'dynamic/noop')
    const protectedUrl = rokka.render.signUrl(url, body.signing_keys[0].key)
    assert.ok(protectedUrl.includes('sig='))
    const dropped = assertJson(await rokka.request(
      `organizations/${ORG}/signing_keys?keep=1`, 'DELETE',
    ), 200)
    assert.equal(dropped.signing_keys.length, 1)
  })

  await step('render.imagesByAlbum (all and favorites, from user:array:albums)', [
    'render.imagesByAlbum', 'sourceimages.meta.add',
  ], async () => {
    const album = 'Summer Trip'
    const beach = assertJson(await rokka.sourceimages.create(ORG, 'beach.png', makePng(40, 30, 5), {
      meta_user: { 'array:albums': [album, 'Beaches'] },
    }), 200).items[0]
    const sunset = assertJson(await rokka.sourceimages.create(ORG, 'sunset.png', makePng(30, 40, 6)), 200).items[0]
    assert.equal((await rokka.sourceimages.meta.add(ORG, sunset.hash, {
      'array:albums': [album], 'int:favorite': 1,
    })).statusCode, 204)
    const all = assertJson(await anonymous.render.imagesByAlbum(ORG, album), 200)
    assert.equal(all.album, album)
    assert.equal(all.total, 2)
    const listed = Object.fromEntries(all.images.map(i => [i.hash, i]))
    assert.deepEqual(Object.keys(listed).sort(), [beach.hash, sunset.hash].sort())
    assert.deepEqual(all.items, all.images)
    assert.equal(listed[beach.hash].name, 'beach.png')
    assert.equal(listed[beach.hash].favorite, false)
    assert.equal(listed[sunset.hash].favorite, true)
    assert.equal(listed[sunset.hash].user_metadata, undefined) // only what a gallery needs
    const favorites = assertJson(await anonymous.render.imagesByAlbum(ORG, album, { favorites: true }), 200)
    assert.deepEqual(favorites.images.map(i => i.hash), [sunset.hash])
    assert.equal(favorites.total, 1)
    await expectError(anonymous.render.imagesByAlbum(ORG, 'No Such Album'), 404)
  })

  await step('memberships.delete', ['memberships.delete'], async () => {
    assertNoContent(await rokka.memberships.delete(ORG, s.memberId))
    await expectError(rokka.memberships.get(ORG, s.memberId), 404)
  })

  return finish(remote)
}

function finish(remote) {
  remote.close()
  const ok = steps.length > 0 && steps.every(st => st.ok)
  process.stdout.write(JSON.stringify({ ok, steps }, null, 1) + '\n')
  process.exitCode = ok ? 0 : 1
}

main().catch(err => {
  process.stderr.write(`suite crashed: ${err && err.stack ? err.stack : describe(err)}\n`)
  process.stdout.write(JSON.stringify({ ok: false, steps, crash: describe(err) }) + '\n')
  process.exitCode = 1
  if (remoteServer) remoteServer.close()
})
