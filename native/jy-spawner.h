/*
 * The wire of jy-spawner (native/jy-spawner.c) and its one client, src/platform/linux/spawner.ts,
 * whose SPAWNER_WIRE holds the same values (test/platform/linux/spawner-wire.test.ts reads
 * this file and checks they agree).
 *
 * Frames, both ways: u32 payload length (host order), payload. The payload starts with one of
 * the codes below and a u32 request id.
 */
#ifndef JY_SPAWNER_H
#define JY_SPAWNER_H

/* The largest payload either side accepts. */
#define SPAWNER_MAX_FRAME (1u << 20)

/* Requests. */
#define SPAWNER_REQ_SPAWN 'S'        /* start a program (the fields: jy-spawner.c) */
#define SPAWNER_REQ_CLOSE_OUTPUT 'C' /* stop relaying that child's output */

/* Replies. */
#define SPAWNER_REPLY_PID 'P'    /* i32 pid: the child runs its program */
#define SPAWNER_REPLY_FAILED 'F' /* i32 errno: it could not (nothing else follows for that id) */
#define SPAWNER_REPLY_STDOUT 'O' /* bytes the child wrote on its stdout */
#define SPAWNER_REPLY_STDERR 'E' /* bytes the child wrote on its stderr */
#define SPAWNER_REPLY_EXIT 'X'   /* i32 wait status, after all of its output */

/* The spawn request's flags byte. */
#define SPAWNER_FLAG_SETSID 1

/* Where one of the child's stdout and stderr goes. */
#define SPAWNER_OUT_NULL 0   /* /dev/null */
#define SPAWNER_OUT_PIPE 1   /* a pipe, relayed as 'O' / 'E' replies */
#define SPAWNER_OUT_APPEND 2 /* appended to the path given, created 0666 less the umask */

#endif
