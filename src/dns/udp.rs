//! The UDP server: one thread per socket that receives datagrams in batches, answers what the
//! fast path can answer on the spot, sends those answers in batches, and hands the rest to the
//! full handler as async tasks of their own (the same `Handler` the TCP side uses), at most
//! `max_slow_queries` at once: beyond that a query is dropped and counted, so that a flood of
//! unusual queries cannot grow the task set without bound. hickory's own UDP loop spawns a task
//! and builds a `Request` for every datagram, which costs more than the pre-encoded answer
//! itself; this loop spends that only on unusual queries.
//!
//! The full handler's answers come back to the I/O thread and leave in the same `sendmmsg` as
//! the fast path's, so that an unusual query costs no more in the kernel than a common one. A
//! thread idle in `poll` is woken for them through an eventfd, which the tasks write only when
//! the thread says it is about to sleep.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::answer::Transport;
use super::cookie::unix_seconds;
use super::fast::{Client, FastTable};
use super::handler::{Handler, Reply};
use super::metrics::FastBatch;
use super::rrl::{self, Rrl, Verdict};
use crate::metrics::Limit;

/// Datagrams received (and answers sent) per system call.
const BATCH: usize = 64;
/// Incoming datagrams larger than this are not DNS queries we answer.
const MAX_QUERY: usize = 4096;
/// How often the I/O thread looks up from an idle socket to see whether it should stop.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// The full handler's answers on their way back to the I/O thread, and the thread's doorbell.
struct Outbox {
    ready: Mutex<Vec<(Vec<u8>, SocketAddr)>>,
    /// The I/O thread is (about to be) asleep in `poll`: ring the bell after adding an answer.
    sleeping: AtomicBool,
    bell: EventFd,
}

impl Outbox {
    /// Hands an answer to the I/O thread, waking it if it sleeps.
    fn post(&self, answer: Vec<u8>, to: SocketAddr) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).push((answer, to));
        // After the push: a thread that set `sleeping` looks at `ready` once more before it
        // sleeps, so either it sees this answer or this sees its flag (both sequentially
        // consistent).
        if self.sleeping.load(Ordering::SeqCst) {
            let _ = self.bell.write(1);
        }
    }

    fn take(&self, into: &mut Vec<(Vec<u8>, SocketAddr)>) {
        into.append(&mut self.ready.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn is_empty(&self) -> bool {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// Where the queries the fast path leaves go: the full handler, as tasks tracked by `tracker`
/// (so shutdown can wait for them), at most as many at once as `slots` has permits (shared by
/// every socket).
#[derive(Clone)]
pub struct Slow {
    pub handler: Handler,
    pub tracker: TaskTracker,
    pub slots: Arc<Semaphore>,
}

/// Serves one UDP socket until `token` is cancelled.
///
/// The socket is read by a thread of its own with `recvmmsg` and answered with `sendmmsg`: up
/// to 64 datagrams per system call each way. On loopback the kernel's UDP path is most of the
/// cost of a query (measured: about three quarters of the CPU), and batching is what brings a
/// server to NSD's rate there; an async loop pays a readiness wake-up and two system calls per
/// datagram.
pub async fn serve(
    socket: UdpSocket,
    fast: Arc<ArcSwapOption<FastTable>>,
    slow: Slow,
    rrl: Option<Arc<Rrl>>,
    token: CancellationToken,
) {
    let set_up = socket.into_std().and_then(|s| {
        let bell = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok((s, bell))
    });
    let (socket, bell) = match set_up {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the UDP socket");
            return;
        }
    };
    let outbox = Arc::new(Outbox { ready: Mutex::default(), sleeping: AtomicBool::new(false), bell });
    let stop = Arc::new(AtomicBool::new(false));
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Handle::current();
    let io = Io { socket, fast, slow, rrl, outbox, runtime, stop: stop.clone() };
    let spawned = std::thread::Builder::new().name("dns-udp".into()).spawn(move || {
        io.run();
        drop(done);
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the UDP thread");
        return;
    }
    token.cancelled().await;
    stop.store(true, Ordering::Relaxed);
    let _ = finished.await;
}

struct Io {
    /// Non-blocking (tokio made it so): the thread waits in `poll`, with the outbox's bell.
    socket: std::net::UdpSocket,
    fast: Arc<ArcSwapOption<FastTable>>,
    slow: Slow,
    rrl: Option<Arc<Rrl>>,
    outbox: Arc<Outbox>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
}

impl Io {
    fn run(self) {
        let fd = self.socket.as_raw_fd();
        let mut queries = vec![[0u8; MAX_QUERY]; BATCH];
        let mut answers: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
        let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
        let mut to: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
        let mut counted = FastBatch::with_capacity(BATCH, Transport::Udp);
        let mut slow_answers: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            received.clear();
            {
                let mut iovs: Vec<[IoSliceMut; 1]> =
                    queries.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
                match recvmmsg(fd, &mut recv_headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                    Ok(results) => received.extend(results.map(|r| (r.bytes, r.address))),
                    Err(Errno::EAGAIN) => {}
                    // A signal, or an ICMP error for an earlier reply.
                    Err(_) => continue,
                }
            }
            self.outbox.take(&mut slow_answers);
            if received.is_empty() && slow_answers.is_empty() {
                self.wait();
                continue;
            }
            counted.start();
            let table = self.fast.load();
            let now = unix_seconds();
            to.clear();
            let mut answered = 0;
            for (i, &(len, addr)) in received.iter().enumerate() {
                let Some(src) = addr.as_ref().and_then(socket_addr) else { continue };
                if src.port() == 0 || src.ip().is_unspecified() || len > MAX_QUERY {
                    continue;
                }
                let query = &queries[i][..len];
                // Rate limiting comes first, so that it covers both paths alike; a client that
                // returns a valid server cookie proved its address and is not limited.
                let verdict = match &self.rrl {
                    Some(rrl) if !self.slow.handler.settings().has_valid_cookie(query, src.ip(), now) => {
                        rrl.check(src.ip(), Instant::now())
                    }
                    _ => Verdict::Answer,
                };
                match verdict {
                    Verdict::Answer => {}
                    Verdict::Slip => {
                        crate::metrics::limit_hit(Limit::RrlSlipped);
                        if rrl::truncated(query, &mut answers[answered]) {
                            to.push(addr);
                            answered += 1;
                        }
                        continue;
                    }
                    Verdict::Drop => {
                        crate::metrics::limit_hit(Limit::RrlDropped);
                        continue;
                    }
                }
                let client = Client { ip: src.ip(), now, transport: Transport::Udp };
                match table.as_ref().and_then(|t| t.answer(query, client, &mut answers[answered])) {
                    Some(qtype) => {
                        counted.answered(qtype, &answers[answered]);
                        to.push(addr);
                        answered += 1;
                    }
                    None => {
                        let Ok(permit) = self.slow.slots.clone().try_acquire_owned() else {
                            crate::metrics::limit_hit(Limit::SlowQueries);
                            continue;
                        };
                        let (outbox, handler, query) = (self.outbox.clone(), self.slow.handler.clone(), query.to_vec());
                        let _guard = self.runtime.enter();
                        self.slow.tracker.spawn(slow(outbox, handler, query, src, permit));
                    }
                }
            }
            counted.finish();
            self.send_all(fd, &mut send_headers, &answers[..answered], &to, &slow_answers);
            slow_answers.clear();
        }
    }

    /// Waits until a datagram arrives, the full handler has an answer ready, or it is time to
    /// look whether to stop.
    fn wait(&self) {
        self.outbox.sleeping.store(true, Ordering::SeqCst);
        if self.outbox.is_empty() {
            let mut fds = [
                PollFd::new(self.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.outbox.bell.as_fd(), PollFlags::POLLIN),
            ];
            let timeout = PollTimeout::try_from(IDLE_CHECK).unwrap_or(PollTimeout::MAX);
            let _ = poll(&mut fds, timeout);
        }
        self.outbox.sleeping.store(false, Ordering::SeqCst);
        // Empties the bell (non-blocking: nothing to read is fine).
        let _ = self.outbox.bell.read();
    }

    /// Sends every answer of the batch, the fast path's and the full handler's: `sendmmsg`,
    /// then one by one whatever it did not take.
    fn send_all(
        &self,
        fd: RawFd,
        headers: &mut MultiHeaders<SockaddrStorage>,
        answers: &[Vec<u8>],
        to: &[Option<SockaddrStorage>],
        slow: &[(Vec<u8>, SocketAddr)],
    ) {
        let slow_to: Vec<Option<SockaddrStorage>> = slow.iter().map(|(_, a)| Some(SockaddrStorage::from(*a))).collect();
        let all = answers.iter().zip(to).chain(slow.iter().map(|(a, _)| a).zip(&slow_to));
        let (all_answers, all_to): (Vec<&Vec<u8>>, Vec<Option<SockaddrStorage>>) = all.map(|(a, t)| (a, *t)).unzip();
        for (answers, to) in all_answers.chunks(BATCH).zip(all_to.chunks(BATCH)) {
            let slices: Vec<[IoSlice; 1]> = answers.iter().map(|a| [IoSlice::new(a)]).collect();
            let sent = match sendmmsg(fd, headers, slices.iter(), to, [], MsgFlags::empty()) {
                Ok(results) => results.count(),
                Err(_) => 0,
            };
            for (answer, addr) in answers.iter().zip(to).skip(sent) {
                if let Some(dst) = addr.as_ref().and_then(socket_addr) {
                    send(&self.socket, answer, dst);
                }
            }
        }
    }
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// One answer, logged if it cannot go (with 4 MiB of send buffer, a full one is rare).
fn send(socket: &std::net::UdpSocket, bytes: &[u8], dst: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, dst) {
        debug!(error = %e, %dst, "UDP send failed");
    }
}

/// The full handler, for everything the fast path left: parse with hickory-proto, answer, and
/// hand the answer back to the I/O thread to send with its next batch.
async fn slow(outbox: Arc<Outbox>, handler: Handler, query: Vec<u8>, src: SocketAddr, _permit: OwnedSemaphorePermit) {
    // Over UDP the handler answers with one message (a transfer question gets a pointer to TCP).
    if let Some(Reply::Message(answer)) = handler.answer(&query, src, Transport::Udp).await {
        outbox.post(answer, src);
    }
}
