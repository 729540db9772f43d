/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost-agent enroll`: get this agent's certificate from the collector with a token. */
#ifndef WP_AGENT_ENROLL_H
#define WP_AGENT_ENROLL_H

/*
 * argv[0] is "enroll". Makes an EC P-256 key and a CSR (CN = agent.id of agent.yaml), sends
 * the CSR with the token to POST /api/v1/enroll over HTTPS (libcurl) and writes the key
 * (0600), the certificate and the CA certificate to agent.yaml's tls: paths (directories
 * created 0750). The collector is trusted only through the CA given on the command line
 * (--ca FILE, or --ca-fingerprint SHA256 of the CA certificate the collector shows at GET
 * /api/v1/enroll/ca): never the system store. Returns the process exit status (0, 1 failure,
 * 2 usage). Blocking; the main thread before anything else runs.
 */
int agent_enroll_main(int argc, char **argv);

#endif
