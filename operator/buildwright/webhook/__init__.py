"""The v1alpha1 ↔ v1beta1 conversion webhook, in the operator's own process.

- `review`: a ConversionReview in, its answer out (pure; the conversion itself is
  `buildwright.api.conversion`).
- `server`: the HTTPS server around it.
- `certificates`: the CA and serving certificates, their storage in a Secret and renewal.
- `config`: where it listens and how the apiserver reaches it.
- `crds`: whether the CRDs trust it yet.
- `serving`: start-up, the Secret, the CRD patches and the renewal loop, against the API.

kopf's start-up and clean-up handlers for it are in `buildwright.handlers.webhook`.
"""
