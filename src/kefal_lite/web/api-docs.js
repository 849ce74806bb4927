// Starts the vendored Swagger UI on /schema/swagger (no inline script: the page runs
// under a Content-Security-Policy without 'unsafe-inline').
/* global SwaggerUIBundle */
const root = document.getElementById("swagger-ui");
if (root && typeof SwaggerUIBundle === "function") {
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec || "/schema/openapi.json",
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
}
