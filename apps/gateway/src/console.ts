import { fileURLToPath } from 'node:url';
import express, { type Router } from 'express';

/** Static files of the web console; the same folder serves from src/ (tests) and dist/. */
const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));

/**
 * The web console at `/`: plain files that call the API from the same origin with the
 * caller's own key, so it can do nothing the key could not do with curl.
 */
export function consoleRouter(): Router {
  const router = express.Router();
  router.use((_request, response, next) => {
    response.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    );
    response.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  router.use(express.static(CONSOLE_DIR, { index: 'index.html', fallthrough: true, maxAge: 0 }));
  return router;
}
