// Starts Swagger UI on the API docs page. A file of its own, not an inline script, so the
// Content-Security-Policy needs no 'unsafe-inline'. The schema URL comes from the page.
"use strict";

(function () {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // no badge fetched from another site
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: (request) => {
      // Marks requests as the page's own (the server's cross-site request checks).
      request.headers["X-Requested-With"] = "fetch";
      return request;
    },
  });
})();
