using System.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Net;

/// <summary>
/// IPv4 reassembly as net/ipv4/ip_fragment.c does it: one queue per (source, destination, id,
/// protocol); a fragment that overlaps another kills its queue (Linux has discarded
/// overlapping IPv4 fragments since 4.19, as RFC 5722 asks for IPv6) while an exact duplicate
/// is only dropped; a queue left incomplete for ipfrag_time is freed and, if its first
/// fragment had arrived, answered with ICMP "fragment reassembly time exceeded"
/// (ip_expire). Memory held by all queues is capped by ipfrag_high_thresh: beyond it new
/// fragments are dropped and counted.
/// </summary>
internal sealed class FragmentReassembler
{
    private const int MaxDatagram = 65535;

    private readonly NetworkStack _stack;
    private readonly Dictionary<Key, Queue> _queues = new();
    private long _memory;

    public FragmentReassembler(NetworkStack stack) => _stack = stack;

    public long MemoryInUse => _memory;
    public int QueueCount => _queues.Count;

    private readonly record struct Key(Ipv4Address Source, Ipv4Address Destination, ushort Id, IpProtocol Protocol);

    /// <summary>
    /// Adds a fragment; when it completes its datagram, <paramref name="deliver"/> runs with the
    /// first fragment's header and the reassembled payload, before the queue's memory is freed.
    /// </summary>
    public void Add(NetworkInterface networkInterface, in Ipv4Packet fragment, DatagramHandler deliver)
    {
        Counters counters = _stack.Counters;
        counters.Increment(Mib.IpReasmReqds);
        var key = new Key(fragment.Source, fragment.Destination, fragment.Identification, fragment.Protocol);
        int start = fragment.FragmentOffset;
        int end = start + fragment.Payload.Length;
        bool last = !fragment.MoreFragments;
        // Every fragment but the last carries a multiple of 8 bytes; Linux trims the excess.
        if (!last) end &= ~7;
        if (end > MaxDatagram || (end <= start && !last))
        {
            CountFailure();
            return;
        }

        if (!_queues.TryGetValue(key, out Queue? queue))
        {
            if (_memory >= _stack.Sysctls.IpFragHighThresh)
            {
                CountFailure();
                return;
            }
            queue = new Queue(key, networkInterface, this);
            _queues.Add(key, queue);
            queue.Timer.Arm(_stack.Loop.Now + _stack.Sysctls.IpFragTime);
        }

        switch (queue.Insert(start, end, last))
        {
            case InsertResult.Duplicate:
                counters.Drop(DropReason.IpFragment);
                return;
            case InsertResult.Invalid:
                Kill(queue);
                CountFailure();
                return;
        }
        if (start == 0) queue.SetFirstHeader(fragment.Header);
        _memory += queue.EnsureCapacity(end);
        fragment.Payload[..(end - start)].CopyTo(queue.Data.AsSpan(start));

        if (queue.IsComplete)
        {
            counters.Increment(Mib.IpReasmOKs);
            deliver(networkInterface, queue.FirstHeader, queue.Data.AsSpan(0, queue.TotalLength));
            Kill(queue);
        }
    }

    public delegate void DatagramHandler(NetworkInterface networkInterface, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload);

    private void Expire(Queue queue)
    {
        _stack.Counters.Increment(Mib.IpReasmTimeout);
        CountFailure();
        if (queue.HasFirst)
        {
            // ip_expire: only when fragment 0 arrived, so the error can quote the transport header.
            Span<byte> quoted = stackalloc byte[queue.FirstHeader.Length + 8];
            queue.FirstHeader.CopyTo(quoted);
            queue.Data.AsSpan(0, Math.Min(8, queue.Data.Length)).CopyTo(quoted[queue.FirstHeader.Length..]);
            _stack.Icmp.SendError(IcmpType.TimeExceeded, 1, queue.Interface, quoted, queue.FirstHeader.Length);
        }
        Kill(queue);
    }

    private void CountFailure()
    {
        _stack.Counters.Increment(Mib.IpReasmFails);
        _stack.Counters.Drop(DropReason.IpFragment);
    }

    private void Kill(Queue queue)
    {
        queue.Timer.Cancel();
        _queues.Remove(queue.Key);
        _memory -= queue.Release();
    }

    private enum InsertResult { Added, Duplicate, Invalid }

    private sealed class Queue
    {
        private readonly List<(int Start, int End)> _ranges = new();
        private byte[] _firstHeader = [];

        public Queue(Key key, NetworkInterface networkInterface, FragmentReassembler owner)
        {
            Key = key;
            Interface = networkInterface;
            Timer = owner._stack.Loop.CreateTimer(() => owner.Expire(this));
        }

        public Key Key { get; }
        public NetworkInterface Interface { get; }
        public Timer Timer { get; }
        public byte[] Data { get; private set; } = [];
        /// <summary>Payload length, known once the last fragment arrived (-1 before).</summary>
        public int TotalLength { get; private set; } = -1;
        public bool HasFirst => _firstHeader.Length > 0;
        public ReadOnlySpan<byte> FirstHeader => _firstHeader;

        public bool IsComplete => HasFirst && TotalLength >= 0 && _ranges.Count == 1 && _ranges[0] == (0, TotalLength);

        /// <summary>inet_frag_queue_insert: exact duplicates are harmless, any other overlap is an attack or corruption.</summary>
        public InsertResult Insert(int start, int end, bool last)
        {
            if (last)
            {
                if (TotalLength >= 0 && TotalLength != end) return InsertResult.Invalid;
                if (_ranges.Count > 0 && _ranges[^1].End > end) return InsertResult.Invalid;
                TotalLength = end;
            }
            else if (TotalLength >= 0 && end > TotalLength) return InsertResult.Invalid;

            int i = 0;
            while (i < _ranges.Count && _ranges[i].End <= start) i++;
            if (i < _ranges.Count && _ranges[i].Start < end)
                return _ranges[i] == (start, end) ? InsertResult.Duplicate : InsertResult.Invalid;

            // Merge with touching neighbours so a complete datagram is one range.
            bool joinsLeft = i > 0 && _ranges[i - 1].End == start;
            bool joinsRight = i < _ranges.Count && _ranges[i].Start == end;
            if (joinsLeft && joinsRight)
            {
                _ranges[i - 1] = (_ranges[i - 1].Start, _ranges[i].End);
                _ranges.RemoveAt(i);
            }
            else if (joinsLeft) _ranges[i - 1] = (_ranges[i - 1].Start, end);
            else if (joinsRight) _ranges[i] = (start, _ranges[i].End);
            else _ranges.Insert(i, (start, end));
            return InsertResult.Added;
        }

        public void SetFirstHeader(ReadOnlySpan<byte> header) => _firstHeader = header.ToArray();

        /// <summary>Grows the data buffer to hold <paramref name="end"/> bytes; returns the bytes added.</summary>
        public int EnsureCapacity(int end)
        {
            if (Data.Length >= end) return 0;
            byte[] bigger = ArrayPool<byte>.Shared.Rent(Math.Max(end, 2048));
            Data.AsSpan().CopyTo(bigger);
            int added = bigger.Length - Data.Length;
            if (Data.Length > 0) ArrayPool<byte>.Shared.Return(Data);
            Data = bigger;
            return added;
        }

        public int Release()
        {
            int size = Data.Length;
            if (size > 0) ArrayPool<byte>.Shared.Return(Data);
            Data = [];
            return size;
        }
    }
}
