import { readFileSync } from 'node:fs';
import express, { type Router } from 'express';
import { openApiDocument, responseXsd } from '@facegate/contracts';
import { sendJsonError } from './http-errors.js';

const XSD_CONTENT_TYPE = 'application/xml; charset=utf-8';

function serviceVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/** The API's machine-readable description: OpenAPI 3.1 and one XSD per XML response root. */
export function apiDocsRouter(): Router {
  const router = express.Router();
  // Generated once: both come from constant tables in @facegate/contracts.
  const openApi = JSON.stringify(openApiDocument({ version: serviceVersion() }), null, 2);
  router.get('/api/v1/openapi.json', (_request, response) => {
    response.status(200).type('application/json').send(openApi);
  });
  router.get('/api/v1/schemas/:file', (request, response) => {
    const match = /^([A-Za-z]+)\.xsd$/.exec(request.params.file);
    const xsd = match ? responseXsd(match[1]!) : undefined;
    if (xsd === undefined) {
      sendJsonError(response, { code: 'ENDPOINT_NOT_FOUND', message: `no schema ${request.params.file}`, details: {} });
      return;
    }
    response.status(200).type(XSD_CONTENT_TYPE).send(xsd);
  });
  return router;
}
