/* SPDX-License-Identifier: Apache-2.0 */
/* systemd readiness for Type=notify units (sdnotify.c). */
#ifndef WP_SDNOTIFY_H
#define WP_SDNOTIFY_H

/* systemd's notify protocol (sd_notify(3)): one datagram with msg ("READY=1", "STOPPING=1")
 * to the AF_UNIX socket named by $NOTIFY_SOCKET ("@name" is the abstract namespace). Does
 * nothing when the variable is unset (not started by systemd with Type=notify); a failed send
 * is only logged, as component comp. */
void wp_sd_notify(const char *comp, const char *msg);

#endif
