# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The kubernetes.core authentication options carbot.migration.deployment_rollout takes (module_utils/rollout.py
    # K8S_AUTH_SPEC), described as kubernetes.core's doc fragment k8s_auth_options describes them.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to an existing Kubernetes config file (or the configuration as a dictionary). Without it and without
        other connection options, the in-cluster configuration, then C(~/.kube/config). Can also be specified via
        the K8S_AUTH_KUBECONFIG environment variable.
    type: raw
  context:
    description: The name of a context found in the config file. Can also be specified via K8S_AUTH_CONTEXT.
    type: str
  host:
    description: A URL for accessing the API. Can also be specified via K8S_AUTH_HOST.
    type: str
  api_key:
    description: Token used to authenticate with the API. Can also be specified via K8S_AUTH_API_KEY.
    type: str
  validate_certs:
    description: Whether to verify the API server's SSL certificates. Can also be specified via K8S_AUTH_VERIFY_SSL.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate used to authenticate with the API (the full chain). Can also be specified via
        K8S_AUTH_SSL_CA_CERT.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Path to a certificate used to authenticate with the API. Can also be specified via K8S_AUTH_CERT_FILE.
    type: path
    aliases: [cert_file]
  client_key:
    description: Path to a key file used to authenticate with the API. Can also be specified via K8S_AUTH_KEY_FILE.
    type: path
    aliases: [key_file]
notes:
  - The other authentication options of kubernetes.core (username and password, proxy, proxy headers, impersonation,
    persist_config) are read from their K8S_AUTH_* environment variables by kubernetes.core's client.
requirements:
  - the collection kubernetes.core and the kubernetes python client (kubernetes >= 24.2.0)
"""
