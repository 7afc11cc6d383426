'use strict';

// Flash-sale API: Express + ioredis.
//
// MODE=naive  read stock, check, (await something), write back stock - 1. Oversells under load.
// MODE=lock   take a per-product Redis lock (SET NX PX) first; busy -> 409, client retries.

const crypto = require('crypto');
const express = require('express');
const Redis = require('ioredis');

const PORT = parseInt(process.env.PORT || '', 10);
const HOST = process.env.HOST || '127.0.0.1';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const MODE = (process.env.MODE || 'lock').toLowerCase();
const NAIVE_DELAY_MS = parseInt(process.env.NAIVE_DELAY_MS || '5', 10);
const LOCK_TTL_MS = parseInt(process.env.LOCK_TTL_MS || '2000', 10);

if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) {
  console.error('PORT is required (1-65535)');
  process.exit(2);
}
if (MODE !== 'naive' && MODE !== 'lock') {
  console.error(`MODE must be "naive" or "lock", got "${MODE}"`);
  process.exit(2);
}
if (!Number.isInteger(NAIVE_DELAY_MS) || NAIVE_DELAY_MS < 0) {
  console.error('NAIVE_DELAY_MS must be an integer >= 0');
  process.exit(2);
}
if (!Number.isInteger(LOCK_TTL_MS) || LOCK_TTL_MS <= 0) {
  console.error('LOCK_TTL_MS must be an integer > 0');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

const redis = new Redis(REDIS_URL, {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false, // fail fast while disconnected instead of queueing
  connectTimeout: 1000,
  commandTimeout: 1000,
  retryStrategy: (times) => Math.min(times * 50, 500),
});

// Without an 'error' listener ioredis errors would be unhandled; log at most once a second.
let lastRedisLog = 0;
redis.on('error', (err) => {
  const now = Date.now();
  if (now - lastRedisLog > 1000) {
    lastRedisLog = now;
    console.error(`redis error: ${err.message}`);
  }
});
redis.on('ready', () => console.log('redis ready'));

const RELEASE_LOCK = `
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
else
  return 0
end`;

const stockKey = (id) => `stock:${id}`;
const purchasedKey = (id) => `purchased:${id}`;
const ordersKey = (id) => `orders:${id}`;
const lockKey = (id) => `lock:${id}`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message, headers) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

async function createOrder(productId, userId) {
  const seq = await redis.incr('order_seq');
  const order = { _id: `ord-${seq}`, userId, productId };
  await redis.sadd(purchasedKey(productId), userId);
  await redis.rpush(ordersKey(productId), JSON.stringify({ ...order, ts: Date.now() }));
  return order;
}

async function checkStock(productId, userId) {
  const raw = await redis.get(stockKey(productId));
  if (raw === null) throw new HttpError(404, 'Product not found');
  const stock = parseInt(raw, 10);
  if (!(stock > 0)) throw new HttpError(400, 'Out of stock');
  if (await redis.sismember(purchasedKey(productId), userId)) {
    throw new HttpError(400, 'User has already purchased this item');
  }
  return stock;
}

// Phase 1: read, check, write back. Two shoppers who read the same stock both sell.
async function buyNaive(productId, userId) {
  const stock = await checkStock(productId, userId);
  if (NAIVE_DELAY_MS > 0) await sleep(NAIVE_DELAY_MS); // payment / validation / whatever
  const remaining = stock - 1;
  await redis.set(stockKey(productId), String(remaining));
  const order = await createOrder(productId, userId);
  return { order, remainingStock: remaining };
}

// Phase 2: one buyer per product at a time; everyone else gets 409 and retries.
async function buyWithLock(productId, userId) {
  const key = lockKey(productId);
  const token = crypto.randomUUID();
  const acquired = await redis.set(key, token, 'PX', LOCK_TTL_MS, 'NX');
  if (acquired !== 'OK') {
    throw new HttpError(409, 'Too many requests, please try again', { 'Retry-After': '1' });
  }
  try {
    await checkStock(productId, userId);
    const remaining = await redis.decr(stockKey(productId));
    const order = await createOrder(productId, userId);
    return { order, remainingStock: remaining };
  } finally {
    try {
      await redis.eval(RELEASE_LOCK, 1, key, token);
    } catch (err) {
      // The lock expires by itself after LOCK_TTL_MS.
      console.error(`lock release failed for ${key}: ${err.message}`);
    }
  }
}

const buy = MODE === 'naive' ? buyNaive : buyWithLock;

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '10kb' }));

// Express 4 does not catch rejected promises by itself.
const asyncHandler = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);

app.get('/health', (req, res) => {
  res.json({ status: 'ok' });
});

app.get('/api/v1/products/:id', asyncHandler(async (req, res) => {
  const productId = req.params.id;
  const raw = await redis.get(stockKey(productId));
  if (raw === null) throw new HttpError(404, 'Product not found');
  res.json({ success: true, data: { productId, stock: parseInt(raw, 10) } });
}));

app.post('/api/v1/shop/buy', asyncHandler(async (req, res) => {
  const userId = req.get('x-user-id');
  if (!userId) throw new HttpError(401, 'Unauthorized');
  const body = req.body && typeof req.body === 'object' ? req.body : {};
  const { productId } = body;
  if ((typeof productId !== 'string' && typeof productId !== 'number') || String(productId) === '') {
    throw new HttpError(400, 'productId is required');
  }
  const result = await buy(String(productId), userId);
  res.json({ success: true, message: 'Order placed', data: result });
}));

app.use((req, res) => {
  res.status(404).json({ success: false, message: 'Not Found' });
});

// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  if (err instanceof HttpError) {
    if (err.headers) res.set(err.headers);
    return res.status(err.status).json({ success: false, message: err.message });
  }
  if (err.type === 'entity.parse.failed') {
    return res.status(400).json({ success: false, message: 'Invalid JSON body' });
  }
  if (err.type === 'entity.too.large') {
    return res.status(413).json({ success: false, message: 'Payload too large' });
  }
  if (err.status >= 400 && err.status < 500) {
    return res.status(err.status).json({ success: false, message: err.message });
  }
  console.error(`${req.method} ${req.originalUrl}: ${err.message}`);
  return res.status(500).json({ success: false, message: 'Internal Server Error' });
});

const server = app.listen(PORT, HOST, () => {
  console.log(`listening on ${HOST}:${PORT} mode=${MODE}`);
});
server.on('error', (err) => {
  console.error(`cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: shutting down`);
  const force = setTimeout(() => process.exit(0), 3000);
  force.unref();
  server.close(() => {
    redis.quit().catch(() => redis.disconnect()).finally(() => process.exit(0));
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
