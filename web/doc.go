// Package web serves the pacsnet web app on the node's HTTP port: the
// login form, the session cookie, and the app's built assets (web/dist,
// embedded in the binary), under a Content-Security-Policy that admits
// only the node's own scripts.
//
// The app itself is a client of the local API (package api) and of
// DICOMweb: every rule about who may see or change what is the node's,
// enforced on those routes, not here. This package knows nothing of the
// node: it asks a [Sessions] to log users in and out.
//
// The front end lives in web/ui (an npm project with a lockfile); `make
// web` builds it into web/dist with esbuild. A binary built without it
// serves a page saying so instead of the app.
//
// It must not import the node or any room of it.
package web
