// The frontend's configuration. tiers writes config.js beside index.html for each
// environment; to serve this directory by hand, copy this file to config.js.
window.PUBLIC_API_URL = "http://localhost:8001";
window.TIERS_ENVIRONMENT = "development";
