// The web app in a real browser (Debian's Chromium driven by playwright-core), against a
// `registry up --demo` market: catalogue search and filters, the model page's lineage SVG,
// the flag, the account page, the rights check, purchases through an EIP-1193 provider
// injected into the page (forwarding to anvil's unlocked dev accounts), and what the page
// says when the wallet is missing, rejects, is on the wrong chain or the contract reverts.
//
// usage: node web/tests/browser/market.mjs BASE_URL RPC_URL SCREENSHOT_DIR
// Exit 0 when every check holds; otherwise the first failure is printed and the exit code
// is 1. Run by `registry-cli`'s `browser` test (which starts the market).

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';

const [base, rpcUrl, shots] = process.argv.slice(2);
if (!base || !rpcUrl || !shots) {
  console.error('usage: node market.mjs BASE_URL RPC_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

// anvil's dev accounts (its test mnemonic): 3 holds licenses, 5 minted the copy, 6 buys here.
const DAVE = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
const MALLORY = '0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc';
const FRANK = '0x976ea74026e726554db657fa54763abd0c3a0aa9';
const GRACE = '0x14dc79964da2c08b23698b3d3cc7ca32193d9955';

const rpc = async (method, params) => {
  const response = await fetch(rpcUrl, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: params || [] }),
  });
  const answer = await response.json();
  if (answer.error) {
    const error = new Error(answer.error.message);
    error.code = answer.error.code;
    error.data = answer.error.data;
    throw error;
  }
  return answer.result;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

// A page, with a wallet for `account` injected unless `wallet` is false. `behave` changes
// how the wallet answers: 'reject' refuses every request as a user would (4001), 'chain'
// reports chain 1 and refuses to switch, 'underpay' sends one wei less than asked,
// 'nomarket' is a node of the right chain id where the market has no code.
const open = async ({ account, wallet = true, behave = 'honest', viewport } = {}) => {
  const context = await browser.newContext({ viewport: viewport || { width: 1300, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push('page script error: ' + error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/.test(message.text())) problems.push(message.text());
  });
  if (wallet) {
    await page.exposeFunction('__walletRpc', async (method, params) => {
      if (behave === 'reject' && method !== 'eth_chainId') return { error: { code: 4001, message: 'User rejected the request.' } };
      if (method === 'eth_requestAccounts' || method === 'eth_accounts') return { result: [account] };
      if (method === 'eth_chainId' && behave === 'chain') return { result: '0x1' };
      if (method === 'eth_getCode' && behave === 'nomarket') return { result: '0x' };
      if (method === 'wallet_switchEthereumChain') {
        return behave === 'chain' ? { error: { code: 4001, message: 'User rejected the request.' } } : { result: null };
      }
      if (behave === 'underpay' && (method === 'eth_call' || method === 'eth_sendTransaction') && params[0].value && BigInt(params[0].value) > 0n) {
        params = [{ ...params[0], value: '0x' + (BigInt(params[0].value) - 1n).toString(16) }, ...params.slice(1)];
      }
      try {
        return { result: await rpc(method, params) };
      } catch (error) {
        return { error: { code: error.code, message: error.message, data: error.data } };
      }
    });
    await page.addInitScript(() => {
      window.ethereum = {
        isTestWallet: true,
        request: async ({ method, params }) => {
          const answer = await window.__walletRpc(method, params || []);
          if (answer.error) {
            const error = new Error(answer.error.message);
            error.code = answer.error.code;
            error.data = answer.error.data;
            throw error;
          }
          return answer.result;
        },
      };
    });
  }
  return { context, page };
};

const cards = async (page, query) => {
  const response = await page.goto(base + '/' + (query ? '?' + query : ''));
  assert.equal(response.status(), 200, 'catalogue ' + query);
  return page.$$eval('#models li.card h2 a', (links) => links.map((a) => a.textContent.trim()).sort());
};

const toast = async (page, pattern) => {
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.getElementById('toast').textContent),
    pattern.source, { timeout: 60_000 },
  ).catch(async () => {
    throw new Error(`the page never said ${pattern}; it says: ${await page.textContent('#toast')}`);
  });
  return page.textContent('#toast');
};

// Script errors and content-security-policy violations seen on any page.
const problems = [];
let checks = 0;
const check = async (name, body) => {
  await body();
  checks += 1;
  console.log('ok   ' + name);
};

try {
  const { page } = await open({ account: FRANK });

  await check('catalogue lists every model, searches by name and filters', async () => {
    assert.deepEqual(await cards(page), ['aurora-base', 'aurora-chat', 'basil-encoder', 'copycat']);
    await page.screenshot({ path: `${shots}/catalogue.png`, fullPage: true });
    assert.deepEqual(await cards(page, 'q=aurora'), ['aurora-base', 'aurora-chat']);
    assert.deepEqual(await cards(page, 'kind=fine-tune'), ['aurora-base']);
    assert.deepEqual(await cards(page, 'lineage=derivative'), ['aurora-chat']);
    assert.deepEqual(await cards(page, 'lineage=base&flagged=no'), ['aurora-base', 'basil-encoder']);
    assert.deepEqual(await cards(page, 'flagged=yes'), ['copycat']);
    // Prices in the offering's currency: ether by default, DUSD when chosen.
    assert.deepEqual(await cards(page, 'currency=native&min=0.015&max=0.03'), ['aurora-chat']);
    assert.deepEqual(await cards(page, 'currency=native&max=0.005'), ['aurora-base']);
    // A currency alone: models with an open offering in it.
    assert.deepEqual(await cards(page, 'currency=native'), ['aurora-base', 'aurora-chat']);
    const token = await page.$eval('select[name=currency] option:nth-child(3)', (o) => o.value);
    assert.deepEqual(await cards(page, `currency=${token}&min=20&max=30`), ['basil-encoder']);
    assert.deepEqual(await cards(page, `currency=${token}&min=26`), []);
    assert.match(await page.textContent('#no-models'), /No model matches/);
    // The form itself, as a user fills it in.
    await page.goto(base + '/');
    await page.fill('input[name=q]', 'chat');
    await Promise.all([page.waitForNavigation(), page.click('#filters button[type=submit]')]);
    assert.deepEqual(await page.$$eval('#models li.card h2 a', (l) => l.map((a) => a.textContent)), ['aurora-chat']);
    // Sorted oldest first, two to a page is not offered; the order is by mint.
    const oldest = await page.goto(base + '/?sort=oldest').then(() => page.$$eval('#models li.card', (l) => l.map((c) => c.dataset.model)));
    assert.deepEqual(oldest, ['1', '2', '3', '4']);
    // Prices read in units: 25 DUSD and 0.01 ETH, never base units.
    const text = await page.textContent('#models');
    assert.match(text, /25 DUSD/);
    assert.match(text, /0\.01 ETH/);
    assert.doesNotMatch(text, /25000000|10000000000000000/);
    const bad = await page.goto(base + '/?currency=native&min=abc');
    assert.equal(bad.status(), 400);
    assert.match(await page.textContent('main'), /"abc" is not an amount/);
    const unpriced = await page.goto(base + '/?max=1');
    assert.equal(unpriced.status(), 400);
    assert.match(await page.textContent('main'), /a price range needs a currency/);
  });

  await check('model page draws the lineage with its edges and shares', async () => {
    await page.goto(base + '/');
    await Promise.all([page.waitForNavigation(), page.click('#models a:text("aurora-chat")')]);
    assert.match(page.url(), /\/models\/3$/);
    const edges = await page.$$eval('#lineage-graph g.edge', (gs) => gs.map((g) => [g.dataset.parent, g.dataset.child, g.dataset.royaltyBps, g.querySelector('text').textContent]));
    assert.deepEqual(edges, [['1', '3', '1000', '10%']]);
    const nodes = await page.$$eval('#lineage-graph a', (as) => as.map((a) => a.getAttribute('href')).sort());
    assert.deepEqual(nodes, ['/models/1', '/models/3']);
    assert.match(await page.textContent('#record'), /verified: 7 tensors/);
    assert.match(await page.textContent('#offerings'), /0\.02 ETH/);
    assert.match(await page.textContent('#offerings'), /1 month/);
    await page.screenshot({ path: `${shots}/model-aurora-chat.png`, fullPage: true });
    // Clicking the parent's box goes to it, whose graph shows the child below.
    await Promise.all([page.waitForNavigation(), page.click('#lineage-graph a[href="/models/1"]')]);
    const down = await page.$$eval('#lineage-graph g.edge', (gs) => gs.map((g) => [g.dataset.parent, g.dataset.child, g.dataset.royaltyBps]));
    assert.deepEqual(down, [['1', '3', '1000']]);
    const y = async (id) => Number(await page.$eval(`#lineage-graph a[data-node="${id}"] rect`, (r) => r.getAttribute('y')));
    assert.ok(await y('1') < await y('3'), 'the parent sits above its child');
    assert.match(await page.textContent('#outputs'), /published|indexed/i);
    assert.match(await page.textContent('#licenses'), /fine-tune/);
    await page.screenshot({ path: `${shots}/model-aurora-base.png`, fullPage: true });
  });

  await check('a flagged model shows the flag and its evidence', async () => {
    await page.goto(base + '/models/4');
    const flag = await page.textContent('#flag');
    assert.match(flag, /aurora-base/);
    assert.match(flag, /similarity/);
    assert.match(flag, /Verdict derived/);
    await page.screenshot({ path: `${shots}/model-copycat.png`, fullPage: true });
  });

  await check('unknown models and malformed input get 404 and 400 pages', async () => {
    const missing = await page.goto(base + '/models/999');
    assert.equal(missing.status(), 404);
    assert.match(await page.textContent('main'), /there is no model 999/);
    const malformed = await page.goto(base + '/accounts/0xnothex');
    assert.equal(malformed.status(), 400);
    assert.match(await page.textContent('main'), /is not an address/);
    const word = await page.goto(base + '/models/abc');
    assert.equal(word.status(), 400);
  });

  await check('account page lists licenses held with their state', async () => {
    await page.goto(base + '/accounts/' + DAVE);
    const held = await page.textContent('#held');
    assert.match(held, /aurora-base/);
    assert.match(held, /access/);
    assert.match(held, /output/);
    assert.match(held, /active/);
    await page.screenshot({ path: `${shots}/account-dave.png`, fullPage: true });
    await page.goto(base + '/accounts/' + '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266');
    assert.match(await page.textContent('#owned'), /aurora-base/);
    // Sales and royalties credited to the author of aurora-base.
    assert.match(await page.textContent('#credits'), /ETH/);
  });

  await check('rights check answers yes with the license, and no', async () => {
    await page.goto(base + '/rights');
    await page.fill('input[name=address]', DAVE);
    await page.fill('input[name=model]', '1');
    await page.selectOption('select[name=kind]', 'access');
    await Promise.all([page.waitForNavigation(), page.click('#rights-form button')]);
    assert.equal(await page.getAttribute('#rights-answer', 'data-allowed'), 'true');
    assert.match(await page.textContent('#rights-license'), /license #\d+/);
    await page.screenshot({ path: `${shots}/rights-yes.png`, fullPage: true });
    await page.goto(`${base}/rights?address=${MALLORY}&model=1&kind=access`);
    assert.equal(await page.getAttribute('#rights-answer', 'data-allowed'), 'false');
    assert.match(await page.textContent('#rights-answer'), /No/);
  });

  await check('a purchase in DUSD (approval first) and one in ether, each shown only once indexed', async () => {
    for (const [model, name] of [['2', 'basil-encoder'], ['1', 'aurora-base']]) {
      await page.goto(base + '/models/' + model);
      await page.click('#offerings button.buy >> nth=0');
      const said = await toast(page, /Bought license #\d+|refused|rejected|wallet/);
      assert.match(said, /Bought license #\d+/, said);
      await page.goto(base + '/accounts/' + FRANK);
      assert.match(await page.textContent('#held'), new RegExp(name));
    }
    await page.screenshot({ path: `${shots}/account-after-buy.png`, fullPage: true });
  });

  await check('renew buttons show on the connected account\'s own page only', async () => {
    await page.goto(base + '/accounts/' + DAVE);
    await page.waitForTimeout(500);
    assert.equal(await page.locator('#held button.renew:visible').count(), 0);
  });

  await check('a renewal from the account page extends the license', async () => {
    await page.goto(base + '/accounts/' + FRANK);
    const before = await page.$eval('#held tr[data-license] td:nth-child(5) time', (t) => t.dataset.unix);
    await page.click('#held button.renew >> nth=0');
    assert.match(await toast(page, /Renewed|refused|rejected|wallet/), /Renewed license #\d+/);
    await page.reload();
    const after = await page.$eval('#held tr[data-license] td:nth-child(5) time', (t) => t.dataset.unix);
    assert.ok(Number(after) > Number(before), `expiry ${before} → ${after}`);
  });

  await check('without a wallet, rejected, on the wrong chain or reverted: the page says why and shows no purchase', async () => {
    const held = async () => (await rpc('eth_call', [{ to: await page.getAttribute('body', 'data-market'), data: '0x70a08231' + GRACE.slice(2).padStart(64, '0') }, 'latest']));
    const none = await held();
    const cases = [
      [{ wallet: false }, /No wallet in this browser/],
      [{ behave: 'reject' }, /rejected the request/],
      [{ behave: 'chain' }, /on chain 1, the market on chain 31337/],
      [{ behave: 'underpay' }, /The contract refused: WrongPayment/],
      [{ behave: 'nomarket' }, /has no market at/],
    ];
    for (const [options, expected] of cases) {
      const { context, page: p } = await open({ account: GRACE, ...options });
      await p.goto(base + '/models/1');
      await p.click('#offerings button.buy >> nth=0');
      const said = await toast(p, expected);
      assert.doesNotMatch(said, /Bought/);
      await p.screenshot({ path: `${shots}/refused-${options.behave || 'no-wallet'}.png` });
      await context.close();
    }
    assert.equal(await held(), none, 'no license was minted to the account');
    await page.goto(base + '/accounts/' + GRACE);
    assert.match(await page.textContent('#held'), /None/);
  });

  await check('readable on a phone and usable from the keyboard', async () => {
    const { context, page: phone } = await open({ account: FRANK, viewport: { width: 375, height: 812 } });
    for (const path of ['/', '/models/3', '/accounts/' + DAVE]) {
      await phone.goto(base + path);
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${path} is ${overflow}px wider than a phone`);
    }
    await phone.goto(base + '/');
    await phone.screenshot({ path: `${shots}/catalogue-phone.png`, fullPage: true });
    await phone.keyboard.press('Tab');
    assert.equal(await phone.evaluate(() => document.activeElement.textContent), 'Skip to content');
    // Tab reaches the search field, typing and Enter search.
    for (let i = 0; i < 12 && await phone.evaluate(() => document.activeElement.name) !== 'q'; i++) {
      await phone.keyboard.press('Tab');
    }
    assert.equal(await phone.evaluate(() => document.activeElement.name), 'q');
    await phone.keyboard.type('basil');
    await Promise.all([phone.waitForNavigation(), phone.keyboard.press('Enter')]);
    assert.deepEqual(await phone.$$eval('#models li.card h2 a', (l) => l.map((a) => a.textContent)), ['basil-encoder']);
    await context.close();
  });

  await check('GraphiQL is linked from every page and loads from this server', async () => {
    await page.goto(base + '/models/1');
    assert.equal(await page.getAttribute('nav a[href="/graphiql"]', 'href'), '/graphiql');
    await page.click('nav a[href="/graphiql"]');
    await page.waitForSelector('.graphiql-container', { timeout: 30_000 });
  });

  await check('no page had a script error or broke its content security policy', async () => {
    const response = await page.goto(base + '/');
    assert.match(response.headers()['content-security-policy'], /default-src 'none'/);
    assert.deepEqual(problems, []);
  });

  console.log(`${checks} browser checks passed; screenshots in ${shots}`);
} catch (error) {
  console.error('FAILED: ' + (error.stack || error));
  process.exitCode = 1;
} finally {
  await browser.close();
}
