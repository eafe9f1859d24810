//! The UDP server: one thread per socket that receives datagrams in batches, answers what the
//! fast path can answer on the spot, sends those answers in batches, and hands the rest to the
//! full handler as async tasks of their own (the same `Handler` the TCP side uses), at most
//! `max_slow_queries` at once: beyond that a query is dropped and counted, so that a flood of
//! unusual queries cannot grow the task set without bound. hickory's own UDP loop spawns a task
//! and builds a `Request` for every datagram, which costs more than the pre-encoded answer
//! itself; this loop spends that only on unusual queries.
//!
//! The full handler's answers come back to the I/O thread and leave in the same `sendmmsg` as
//! the fast path's, so that an unusual query costs no more in the kernel than a common one;
//! only while the thread waits in `recvmmsg` for a query does a task send its answer itself.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
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
use super::liveness::Liveness;
use super::metrics::FastBatch;
use super::rrl::{self, Rrl, Verdict};
use crate::metrics::Limit;

/// Datagrams received (and answers sent) per system call.
const BATCH: usize = 64;
/// Incoming datagrams larger than this are not DNS queries we answer.
const MAX_QUERY: usize = 4096;
/// How often the I/O thread looks up from an idle socket to see whether it should stop.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// The full handler's answers on their way back to the I/O thread.
struct Outbox {
    ready: Mutex<Vec<(Vec<u8>, SocketAddr)>>,
    /// How many answers were posted: the thread looks at `ready` only when some were, so that
    /// a batch with none pays no lock.
    posted: AtomicUsize,
    /// The I/O thread is (about to be) blocked in `recvmmsg`: it would send nothing until a
    /// query arrives, so whoever posts sends.
    sleeping: AtomicBool,
    socket: Arc<std::net::UdpSocket>,
}

impl Outbox {
    /// Hands an answer to the I/O thread for its next batch; sends it at once if the thread
    /// waits for queries.
    fn post(&self, answer: Vec<u8>, to: SocketAddr) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).push((answer, to));
        self.posted.fetch_add(1, Ordering::SeqCst);
        // After the push: the thread sets `sleeping` before it empties the outbox one last time
        // and blocks, so either it sees this answer or this sees its flag (both sequentially
        // consistent); both may, and the lock hands each answer to one of them.
        if self.sleeping.load(Ordering::SeqCst) {
            self.flush();
        }
    }

    fn take(&self, into: &mut Vec<(Vec<u8>, SocketAddr)>) {
        if self.posted.swap(0, Ordering::SeqCst) > 0 {
            into.append(&mut self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Sends what waits, one by one (the thread is idle: there is nothing to batch it with).
    fn flush(&self) {
        if self.posted.swap(0, Ordering::SeqCst) == 0 {
            return;
        }
        let ready = std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        for (answer, to) in ready {
            send(&self.socket, &answer, to);
        }
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
    alive: (Arc<Liveness>, usize),
    token: CancellationToken,
) {
    let socket = match blocking(socket) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the UDP socket");
            return;
        }
    };
    let outbox = Arc::new(Outbox {
        ready: Mutex::default(),
        posted: AtomicUsize::new(0),
        sleeping: AtomicBool::new(false),
        socket: socket.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Handle::current();
    let io = Io { socket, fast, slow, rrl, outbox, runtime, alive, stop: stop.clone() };
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

/// The socket in blocking mode with a read timeout, for the I/O thread; tokio lets go of it.
fn blocking(socket: UdpSocket) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(IDLE_CHECK))?;
    Ok(socket)
}

struct Io {
    socket: Arc<std::net::UdpSocket>,
    fast: Arc<ArcSwapOption<FastTable>>,
    slow: Slow,
    rrl: Option<Arc<Rrl>>,
    outbox: Arc<Outbox>,
    runtime: tokio::runtime::Handle,
    /// This loop's heartbeat, for the watchdog.
    alive: (Arc<Liveness>, usize),
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
                // Answers posted since the last batch went out go now; while blocked, posters
                // send their own.
                self.outbox.sleeping.store(true, Ordering::SeqCst);
                self.outbox.flush();
                let got = recvmmsg(fd, &mut recv_headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None);
                self.outbox.sleeping.store(false, Ordering::SeqCst);
                self.alive.0.beat(self.alive.1);
                match got {
                    Ok(results) => received.extend(results.map(|r| (r.bytes, r.address))),
                    // The read timeout (idle), a signal, or an ICMP error for an earlier reply.
                    Err(_) => continue,
                }
            }
            counted.start();
            let table = self.fast.load();
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
                    Some(rrl) if !self.slow.handler.settings().has_valid_cookie(query, src.ip(), unix_seconds()) => {
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
                let client = Client { ip: src.ip(), transport: Transport::Udp };
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
            self.outbox.take(&mut slow_answers);
            self.send_all(fd, &mut send_headers, &answers[..answered], &to, &slow_answers);
            slow_answers.clear();
        }
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

/// One answer, logged if it cannot go. The socket is blocking, but with 4 MiB of send buffer a
/// UDP send does not wait in practice.
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
