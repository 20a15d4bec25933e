// The interactive OpenAPI viewer (swagger-ui, vendored) for /api/openapi.json. "Try it out"
// calls this same server; authorise with a user's bearer token or a CPO's OCPI token.
/* global SwaggerUIBundle */
(function () {
  const root = document.getElementById('swagger-ui');
  if (typeof SwaggerUIBundle !== 'function') {
    root.innerHTML = '<p class="docs-loading" role="alert">The API viewer is missing on this server (run scripts/build-web). The raw document is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>';
    return;
  }
  window.ui = SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    tryItOutEnabled: false,
    persistAuthorization: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
}());
