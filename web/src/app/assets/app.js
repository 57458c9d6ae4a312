// The model registry's pages: copy buttons, and buying or renewing with an injected
// EIP-1193 wallet (window.ethereum). The server builds each transaction (/app/tx/…); the
// wallet signs and sends it; the page follows it to its receipt and then to the index, and
// says a purchase happened only once both show it.
'use strict';

const body = document.body;
const chainId = Number(body.dataset.chainId || 0);
const say = (text, kind) => {
  const toast = document.getElementById('toast');
  toast.textContent = text;
  toast.className = kind || '';
  toast.hidden = false;
};

// ---------------------------------------------------------------- copy buttons
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button.copy');
  if (!button) return;
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    say('Copied ' + button.dataset.copy);
  } catch {
    // No clipboard permission (an insecure origin): select the text for the user instead.
    window.prompt('Copy this:', button.dataset.copy);
  }
});

// ---------------------------------------------------------------- wallet
class WalletError extends Error {}

const wallet = () => {
  if (!window.ethereum || typeof window.ethereum.request !== 'function') {
    throw new WalletError('No wallet in this browser: install MetaMask (or another EIP-1193 wallet) to buy from this page, or use `registry buy`.');
  }
  return window.ethereum;
};

// An EIP-1193 error code, where wallets put it (some nest the original error).
const codeOf = (error) => {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 4; e = e.data && e.data.originalError ? e.data.originalError : e.cause, depth++) {
    if (typeof e.code === 'number') return e.code;
  }
  return undefined;
};

// What a wallet's or node's error means to the user.
const explain = async (error) => {
  if (error instanceof WalletError) return error.message;
  if (codeOf(error) === 4001) return 'You rejected the request in your wallet: nothing was sent.';
  const data = revertData(error);
  if (data) {
    const answer = await fetch('/app/revert?data=' + encodeURIComponent(data)).then((r) => r.json()).catch(() => null);
    if (answer && answer.message) return 'The contract refused: ' + answer.message;
  }
  return 'The wallet reported: ' + ((error && (error.message || error.toString())) || 'an unknown error');
};

// Revert data, wherever a wallet or node put it.
const revertData = (error) => {
  for (let e = error, depth = 0; e && depth < 4; e = e.data || e.error || e.cause, depth++) {
    if (typeof e === 'string' && /^0x[0-9a-fA-F]{8,}$/.test(e)) return e;
    if (typeof e.data === 'string' && /^0x[0-9a-fA-F]{8,}$/.test(e.data)) return e.data;
  }
  return null;
};

const connect = async () => {
  const accounts = await wallet().request({ method: 'eth_requestAccounts' });
  if (!accounts || !accounts.length) throw new WalletError('The wallet gave no account.');
  const account = accounts[0].toLowerCase();
  showRenewals(account);
  const shown = document.getElementById('wallet-account');
  shown.innerHTML = '';
  const link = document.createElement('a');
  link.href = '/accounts/' + account;
  link.textContent = account.slice(0, 6) + '…' + account.slice(-4);
  shown.append(link);
  shown.hidden = false;
  document.getElementById('connect').hidden = true;
  return account;
};

// Puts the wallet on the market's chain (adding it when the wallet does not know it).
const onChain = async (tx) => {
  const provider = wallet();
  const current = Number(await provider.request({ method: 'eth_chainId' }));
  if (current !== chainId) await switchChain(provider, tx, current);
  // The right chain id on the wrong node (another anvil on the port the wallet knows): a
  // call to an address without code "succeeds" there and buys nothing.
  const market = body.dataset.market;
  const code = await provider.request({ method: 'eth_getCode', params: [market, 'latest'] });
  if (!code || code === '0x') {
    throw new WalletError('The wallet\'s node for chain ' + chainId + ' has no market at ' + market + ': point the wallet at ' + (tx.rpcUrl || 'this market\'s node') + '. Nothing was sent.');
  }
};

const switchChain = async (provider, tx, current) => {
  try {
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: tx.chainIdHex }] });
  } catch (error) {
    if (codeOf(error) === 4902 && tx.rpcUrl) {
      await provider.request({
        method: 'wallet_addEthereumChain',
        params: [{ chainId: tx.chainIdHex, chainName: 'Model registry ' + chainId, rpcUrls: [tx.rpcUrl],
                   nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 } }],
      });
    } else if (codeOf(error) === 4001) {
      throw new WalletError('The wallet is on chain ' + current + ', the market on chain ' + chainId + ': switch to it to buy.');
    } else {
      throw new WalletError('The wallet is on chain ' + current + ', the market on chain ' + chainId + ', and it could not switch: ' + ((error && error.message) || error));
    }
  }
  const now = Number(await provider.request({ method: 'eth_chainId' }));
  if (now !== chainId) throw new WalletError('The wallet is on chain ' + now + ', the market on chain ' + chainId + '.');
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Sends one step: simulated first (a revert is explained before anything is signed), then
// sent, then followed to its receipt. Throws when it reverts.
const send = async (from, step) => {
  const provider = wallet();
  const tx = { from, to: step.to, data: step.data, value: step.value };
  await provider.request({ method: 'eth_call', params: [tx, 'latest'] });
  const hash = await provider.request({ method: 'eth_sendTransaction', params: [tx] });
  say('Sent: ' + step.label + ' (' + hash.slice(0, 10) + '…); waiting for it to be mined…');
  for (let i = 0; i < 240; i++) {
    const receipt = await provider.request({ method: 'eth_getTransactionReceipt', params: [hash] });
    if (receipt) {
      if (Number(receipt.status) !== 1) throw new WalletError('The transaction ' + hash + ' reverted: nothing was bought.');
      // Success means the contract it was sent to recorded it (an event of its own).
      const to = step.to.toLowerCase();
      if (!(receipt.logs || []).some((log) => (log.address || '').toLowerCase() === to)) {
        throw new WalletError('The transaction ' + hash + ' changed nothing at ' + step.to + ': nothing was bought.');
      }
      return receipt;
    }
    await sleep(500);
  }
  throw new WalletError('The transaction ' + hash + ' was not mined within two minutes; check your wallet.');
};

const runSteps = async (account, tx) => {
  for (const step of tx.steps) {
    if (step.unlessAllowance) {
      const allowance = await wallet().request({ method: 'eth_call', params: [{ to: step.unlessAllowance.to, data: step.unlessAllowance.data }, 'latest'] });
      const have = allowance && allowance !== '0x' ? BigInt(allowance) : 0n;
      if (have >= BigInt(step.unlessAllowance.atLeast)) continue;
    }
    await send(account, step);
  }
};

// Waits until the index answers `query` with something `found` accepts.
const indexed = async (query, variables, found) => {
  for (let i = 0; i < 120; i++) {
    const answer = await fetch('/graphql', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    }).then((r) => r.json()).catch(() => null);
    const value = answer && answer.data && found(answer.data);
    if (value) return value;
    await sleep(500);
  }
  return null;
};

const HELD = `query Held($holder: String!, $offering: ID!) {
  licenses(where: { holder: $holder, offering: $offering }, orderBy: ID_DESC, first: 100) { nodes { id } } }`;

const buy = async (button) => {
  const offering = button.dataset.offering;
  button.disabled = true;
  try {
    const account = await connect();
    let recipient = '';
    if (button.dataset.encrypted === 'true') {
      recipient = (window.prompt('This model is encrypted. The age recipient (age1…) its key is to be wrapped to (`registry identity` prints yours):') || '').trim();
      if (!recipient) throw new WalletError('An encrypted model needs an age recipient for its key: nothing was bought.');
    }
    const before = await indexed(HELD, { holder: account, offering }, (d) => d.licenses.nodes.map((n) => n.id));
    const answer = await fetch(`/app/tx/buy?offering=${encodeURIComponent(offering)}&buyer=${account}&recipient=${encodeURIComponent(recipient)}`);
    const tx = await answer.json();
    if (!answer.ok) throw new WalletError(tx.error || 'The server could not build the purchase.');
    await onChain(tx);
    await runSteps(account, tx);
    say('Mined. Waiting for the index to show the license…');
    const known = new Set(before || []);
    const license = await indexed(HELD, { holder: account, offering }, (d) => d.licenses.nodes.map((n) => n.id).find((id) => !known.has(id)));
    if (!license) {
      say('The purchase was mined, but the index has not shown it yet: see your account page in a moment.', 'warn');
      return;
    }
    const toast = document.getElementById('toast');
    toast.className = 'ok';
    toast.textContent = 'Bought license #' + license + '. ';
    const link = document.createElement('a');
    link.href = '/accounts/' + account;
    link.textContent = 'See it on your account page';
    toast.append(link);
  } catch (error) {
    say(await explain(error), 'error');
  } finally {
    button.disabled = false;
  }
};

const EXPIRY = `query Expiry($id: ID!) { license(id: $id) { expiry } }`;

const renew = async (button) => {
  const license = button.dataset.license;
  button.disabled = true;
  try {
    const account = await connect();
    const before = await indexed(EXPIRY, { id: license }, (d) => d.license && String(d.license.expiry));
    const answer = await fetch(`/app/tx/renew?license=${encodeURIComponent(license)}&payer=${account}`);
    const tx = await answer.json();
    if (!answer.ok) throw new WalletError(tx.error || 'The server could not build the renewal.');
    await onChain(tx);
    await runSteps(account, tx);
    say('Mined. Waiting for the index to show the new expiry…');
    const after = await indexed(EXPIRY, { id: license }, (d) => d.license && String(d.license.expiry) !== before && String(d.license.expiry));
    say(after ? 'Renewed license #' + license + ' until ' + new Date(Number(after) * 1000).toISOString() + '.' : 'The renewal was mined; the index has not shown it yet.', after ? 'ok' : 'warn');
  } catch (error) {
    say(await explain(error), 'error');
  } finally {
    button.disabled = false;
  }
};

// Renew buttons show on the connected account's own page only (the market renews a
// license for its holder).
const showRenewals = (account) => {
  const page = document.getElementById('account');
  const own = page && page.dataset.account === account;
  for (const button of document.querySelectorAll('button.renew')) button.hidden = !own;
};

if (window.ethereum && typeof window.ethereum.request === 'function' && document.querySelector('button.renew')) {
  // Already connected (no prompt): show this account's renew buttons.
  window.ethereum.request({ method: 'eth_accounts' })
    .then((accounts) => accounts && accounts[0] && showRenewals(accounts[0].toLowerCase()))
    .catch(() => {});
}

document.addEventListener('click', (event) => {
  const button = event.target.closest('button.buy, button.renew, #connect');
  if (!button) return;
  if (button.id === 'connect') connect().catch(async (error) => say(await explain(error), 'error'));
  else if (button.classList.contains('buy')) buy(button);
  else renew(button);
});
