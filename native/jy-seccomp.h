/*
 * The jail's seccomp filter, shared by jy-stage (pid 1) and jy-enter (every exec).
 *
 *   install_seccomp(ALLOW)  ALLOW: comma-separated allowances from the jail's allow.*
 *                           parameters ("mount,raw_sockets,sysvipc"), or "" for none.
 *
 * Called while the helper still holds CAP_SYS_ADMIN (no PR_SET_NO_NEW_PRIVS needed, so
 * setuid programs of the jail keep working), right before the capability drop and the exec
 * of the jail's first program. Denied calls fail with EPERM.
 *
 * STUB: filled in by the seccomp work (libseccomp); until then it installs nothing.
 */
#ifndef JY_SECCOMP_H
#define JY_SECCOMP_H

static void install_seccomp(const char *allow) {
	(void)allow;
}

#endif
